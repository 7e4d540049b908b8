#!/usr/bin/python3
"""Renders the docs' tables from the records in results/, so that a figure in a doc is a record's.

A table lives in a doc between two markers:

    <!-- results: traffic -->
    ...rendered rows...
    <!-- /results: traffic -->

A figure inside prose is written <!-- value: NAME -->2.50×<!-- /value --> and
rendered from VALUES, so that one fact has one number on every page.
`render_results.py` rewrites every such block and value from its records; `--check`
changes nothing and exits 1 naming each block that differs from what the
records render (make test runs it). Tables known: traffic (results/traffic.jsonl),
padding (results/padding.jsonl), memory_limit (results/memory_limit.jsonl),
padding_outputs (results/padding_outputs.jsonl), canvas_sweep
(results/canvas_sweep.jsonl), int8_speed (results/benchmarks.jsonl's int8_r50
records), int8_accuracy (results/int8_accuracy.jsonl), and every table of
results/accuracy_tables.jsonl and results/benchmark_tables.jsonl by its name: the
tables of runs that wrote no record (accuracy.md's, benchmarks.md's and
platforms.md's fresh-machine checks), transcribed once with each run's date,
machine, commit, command and, for trained models, model files.

Usage: render_results.py [--check] [ROOT]
"""
import json
import re
import sys
import textwrap
from pathlib import Path

DOCS = ["docs/benchmarks.md", "docs/accuracy.md", "docs/serving.md", "docs/reviewer-questions.md", "docs/int8.md",
        "docs/platforms.md", "README.md"]
BLOCK = re.compile(r"(<!-- results: (\w[\w-]*) -->\n)(.*?)(<!-- /results: \2 -->)", re.S)


def records(root, name):
    return [json.loads(line) for line in (root / "results" / f"{name}.jsonl").read_text().splitlines() if line]


def run_label(record):
    """When and at which commit ("+": the tree had changes)."""
    return f"{record['date'][:10]} `{record['commit']}`{'+' if record.get('tree_changed') else ''}"


def runs(rows):
    """Records of one run_traffic_bench.sh invocation: a run starts at each server record labelled canvases."""
    groups = []
    for r in rows:
        if r["label"].startswith("canvases") or not groups:
            groups.append([])
        groups[-1].append(r)
    return groups


def table(columns, rows):
    """A Markdown table: `columns` are header cells (a trailing ":" aligns the column right),
    `rows` its rendered lines."""
    names = [c.rstrip(":") for c in columns]
    align = ["---:" if c.endswith(":") else "---" for c in columns]
    return "| " + " | ".join(names) + " |\n| " + " | ".join(align) + " |\n" + "\n".join(rows) + "\n"


def traffic(root, name="traffic"):
    """The served runs of results/NAME.jsonl, each beside its ONNX Runtime and eager runs."""
    lines = []
    for group in runs(records(root, name)):
        by_engine = {r["label"].split(" ")[0]: r for r in group}
        eager = by_engine.get("eager")
        for i, r in enumerate(group):
            # A served row's ONNX Runtime is the one run round by round beside it, else the run's own.
            beside = group[i + 1] if i + 1 < len(group) and group[i + 1]["label"] == "onnxruntime (interleaved)" else None
            ort = beside or next((x for x in group if x["label"].startswith("onnxruntime")), None)
            machine = r["machine"]
            cap = machine.get("onednn_max_cpu_isa") or "none"
            run = f"{run_label(r)}, cap {cap}"
            ratio = lambda ref: f"{r['c1_p50_ms'] / ref['c1_p50_ms']:.2f}" if ref and ref is not r else ""  # noqa: E731
            throughput = r.get("throughput", {})
            tput = " / ".join(f"{throughput[c]:.2f}" if c in throughput else "-" for c in ("1", "4")) if throughput else ""
            growth = r.get("rss_growth")
            growth_text = f"{growth['ratio']:.3f} ({growth['from_request']}-{growth['to_request']})" if growth else ""
            metrics = r.get("metrics_end", {})
            parts = ""
            if metrics:
                exported = sum(metrics.get(name, 0) for name in (
                    'detr_memory_budget_bytes{part="runtime"}', "detr_allocator_allocated_bytes",
                    "detr_allocator_cached_bytes", "detr_malloc_in_use_bytes", "detr_malloc_free_bytes"))
                parts = f"{exported / 2**20 / r['rss_end_mb']:.2f}"
            first = r.get("first_request_ms", {})
            slowest = max(first, key=first.get) if first else None
            first_text = f"{first[slowest]:.0f} ms ({slowest}; warm {r['warm_median_ms'][slowest]:.0f})" if slowest else ""
            lines.append(f"| {run} | {r['label']} | {r['c1_p50_ms']:.0f} ms | {r['c1_p99_ms']:.0f} ms | "
                         f"{r['c1_p99_ms'] / r['c1_p50_ms']:.2f} | {ratio(ort)} | {ratio(eager)} | {tput} | "
                         f"{r['rss_after_round_1_mb']:.0f} / {r['rss_end_mb']:.0f} MB | {growth_text} | {parts} | {first_text} |")
    columns = [
        "run", "engine", "warm p50:", "p99:", "p99 / p50:", "p50 / ONNX Runtime:", "p50 / eager:",
        "req/s at c=1 / c=4:", "RSS after round 1 / end:", "RSS growth (requests):", "exported parts / RSS:",
        "slowest first request:"
    ]
    return table(columns, lines)


def padding(root):
    rows = [f"| {run_label(r)} | {r['label']} "
            f"({r['draw']}, {r['images']} images) | {r['unpadded']['ap']:.3f} | {r['canvases']['ap']:.3f} | "
            f"{r['unpadded']['ap50']:.3f} | {r['canvases']['ap50']:.3f} |" for r in records(root, "padding")]
    columns = [
        "run", "model, held-out set", "AP unpadded:", "AP canvases:", "AP50 unpadded:", "AP50 canvases:"
    ]
    return table(columns, rows)


def memory_limit(root):
    mib = lambda b: f"{b / 2**20:,.0f} MiB" if b is not None else ""  # noqa: E731
    rows = [f"| {run_label(r)} | {r['deployment']} "
            f"({r['route']}) | {mib(r['limit_bytes'])} | {mib(r['request_bytes'])} | {r['enforced_by']} | "
            f"{r['concurrency']} x {r['seconds']:.0f} | {r['answered']} / {sum(r['failures'].values())} | "
            f"{mib(r['rss_ready_bytes'])} / {mib(r['rss_peak_bytes'])} | {mib(r.get('peak_usage_bytes'))} | "
            f"{r.get('oom_kills', '')} | {'passed' if r['passed'] else 'FAILED'} |"
            for r in records(root, "memory_limit")]
    columns = [
        "run", "deployment (route)", "limit:", "request:", "enforced by", "clients x seconds:", "answered / failed:",
        "RSS at ready / peak:", "cgroup peak:", "OOM kills:", "result"
    ]
    return table(columns, rows)


def padding_outputs(root):
    rows = []
    for r in records(root, "padding_outputs"):
        run = run_label(r)
        model = Path(r["model_config"]).stem
        for i in r["images"]:
            other = f" / {i['other_image_max_abs_logit']:.2g}" if "other_image_max_abs_logit" in i else ""
            rows.append(f"| {run} | {model} | {i['resized']} -> {i['canvas']} ({i['padded_fraction']:.0%}) | "
                        f"{i['max_abs_logit']:.2g}{other} | {i['max_abs_box']:.2g} | {i['top_class_agreement']:.2f} |")
    columns = [
        "run", "model", "resized -> canvas (padded)", "max abs logit: padded / another image:", "max abs box:",
        "top class agreement:"
    ]
    return table(columns, rows)


def serving_overhead(root):
    rows = []
    for r in records(root, "serving_overhead"):
        builds = f"`{r['before']['commit']}` -> `{r['after']['commit']}`"
        for label, figures in r["rows"].items():
            rows.append(f"| {r['date'][:10]} | {builds} | {label} | "
                        f"{', '.join(f'{v:.1f}' for v in figures['before_ms'])} | "
                        f"{', '.join(f'{v:.1f}' for v in figures['after_ms'])} |")
    return table(["run", "before -> after", "per request at c=1", "before (ms):", "after (ms):"], rows)


def canvas_sweep(root):
    rows = []
    for r in records(root, "canvas_sweep"):
        run = run_label(r)
        best = min(s["mean_ms"] for s in r["sets"])
        fewest = {}
        for s in r["sets"]:  # the best set of each size
            if s["count"] not in fewest or s["mean_ms"] < fewest[s["count"]]["mean_ms"]:
                fewest[s["count"]] = s
        shown = [(s, "") for _, s in sorted(fewest.items())]
        if "current" in r and all(r["current"]["canvases"] != s["canvases"] for s, _ in shown):
            shown.append((r["current"], "traffic_r50.yaml then: "))
        for s, note in shown:
            sides = sorted({max(c) for c in s["canvases"]})
            mark = " **chosen**" if s["canvases"] == r["chosen"]["canvases"] else ""
            rows.append(f"| {run} | {note}{', '.join(map(str, sides))}{mark} | {s['count']} | {s['mean_ms']:.0f} ms | "
                        f"{s['mean_ms'] / best:.3f} | {s['padded_share']:.1%} | {s['warm_up_seconds']:.1f} s |")
    columns = [
        "run", "canvases (both ways round)", "count:", "mix mean forward:", "/ best set:", "padded pixels:",
        "warm-up at start:"
    ]
    return table(columns, rows)


def latest(rows, **match):
    """The last record whose fields equal `match`."""
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    if not found:
        raise SystemExit(f"no record with {match}")
    return found[-1]


def served_ratios(root):
    """Served float32 DETR-R50 p50 over ONNX Runtime's, in every run that interleaved them (no cap):
    results/traffic.jsonl's, and the float32 rows of results/traffic_int8.jsonl (the int8 bench serves
    the same mix in float32 first)."""
    ratios = []
    for name in ("traffic", "traffic_int8"):
        for group in runs(records(root, name)):
            for r, after in zip(group, group[1:]):
                if (after["label"] == "onnxruntime (interleaved)" and not r["machine"].get("onednn_max_cpu_isa")
                        and "int8" not in r["label"]):
                    ratios.append(r["c1_p50_ms"] / after["c1_p50_ms"])
    return ratios


def attention_record(root, cap=""):
    """The latest attention_bench record run under `cap` ("" = none; "AVX2": ONEDNN_MAX_CPU_ISA and
    DETR_KERNEL_MAX_ISA both AVX2)."""
    rows = [r for r in records(root, "benchmarks") if r["name"] == "attention"
            and (r["machine"].get("onednn_max_cpu_isa") or "") == cap and (r["machine"].get("kernel_max_isa") or "") == cap]
    if not rows:
        raise SystemExit(f"no attention record under cap {cap!r}")
    return rows[-1]


def attention_ratio(root, tokens, figure="real_time_ms", cap=""):
    """Optimization attention (K = 5) over softmax at `tokens` encoder tokens, in the latest record
    under `cap`."""
    a = attention_record(root, cap)["benchmarks"]
    site = f"encoder.self/{tokens}/{tokens}"
    return a[f"optimization_K5/{site}"][figure] / a[f"softmax/{site}"][figure]


def r50_ratio(root):
    """DETR-R50's forward pass with optimization at every site over softmax's, in the latest record."""
    f = latest(records(root, "benchmarks"), name="detr_r50_forward")["benchmarks"]
    return f["detr_r50_800x1066/optimization"]["real_time_ms"] / f["detr_r50_800x1066/softmax"]["real_time_ms"]


def cell(root, table, row_starts, column):
    """A figure of a transcribed table (results/accuracy_tables.jsonl): the row whose first
    text cell starts with `row_starts`, as a number."""
    record = [r for r in records(root, "accuracy_tables") if r["table"] == table][-1]  # the newest run
    key = 1 if record["header"][0] == "group" else 0
    row = next(r for r in record["rows"] if r[key].startswith(row_starts))
    return float(row[record["header"].index(column)].strip("*"))


SHAPES_ROWS = {"softmax": ("accuracy-shapes", "softmax (all sites)"),
               "optimization": ("accuracy-shapes", "optimization (all sites)"),
               "encoder_self": ("accuracy-shapes", "optimization at encoder.self"),
               "decoder_self": ("accuracy-shapes", "optimization at decoder.self"),
               "decoder_cross": ("accuracy-shapes", "optimization at decoder.cross"),
               "long_finetune": ("ablations-3", "`long-finetune`"),
               "from_scratch": ("ablations-4", "`from-scratch`")}


def shapes_values():
    """The shapes task's figures as values: NAME_ap, NAME_ap50 and NAME_ap_gap (AP against softmax's)."""
    values = {}
    for name, (table, row) in SHAPES_ROWS.items():
        values[f"shapes_{name}_ap"] = lambda root, t=table, r=row: f"{cell(root, t, r, 'AP'):.3f}"
        values[f"shapes_{name}_ap50"] = lambda root, t=table, r=row: f"{cell(root, t, r, 'AP50'):.3f}"
        values[f"shapes_{name}_ap_gap"] = lambda root, t=table, r=row: (
            f"{cell(root, t, r, 'AP') - cell(root, *SHAPES_ROWS['softmax'], 'AP'):+.2f}".replace("-", "−"))
    values["shapes_swap_without_finetuning_ap50"] = lambda root: (
        f"{cell(root, *SHAPES_ROWS['optimization'], 'AP50 before fine-tuning'):.3f}")
    return values


def int8_ratio(root, cap, part):
    """Int8 time over float32's in the latest int8_r50 record under `cap` ("" = none): part is
    "backbone" or "whole"."""
    rows = [r for r in records(root, "benchmarks")
            if r["name"] == "int8_r50" and (r["machine"].get("onednn_max_cpu_isa") or "") == cap]
    if not rows:
        raise SystemExit(f"no int8_r50 record under cap {cap!r}")
    b = {k: v["real_time_ms"] for k, v in rows[-1]["benchmarks"].items()}
    if part == "backbone":
        return b["r50_backbone_800x1066/int8"] / b["r50_backbone_800x1066/float32"]
    return b["detr_r50_800x1066/softmax_int8"] / b["detr_r50_800x1066/softmax"]


def served_int8_ratio(root, cap=""):
    """Served int8's warm p50 over served float32's, in the latest run of results/traffic_int8.jsonl
    under `cap` ("" = none)."""
    rows = [r for r in records(root, "traffic_int8") if (r["machine"].get("onednn_max_cpu_isa") or "") == cap]
    return latest(rows, label="canvases, int8")["c1_p50_ms"] / latest(rows, label="canvases, float32")["c1_p50_ms"]


def int8_values():
    """int8_{backbone,whole}_ratio_{native,vnni,avx2} and int8_max_ap50_loss."""
    values = {}
    for name, cap in (("native", ""), ("vnni", "AVX512_CORE_VNNI"), ("avx2", "AVX2")):
        for part in ("backbone", "whole"):
            values[f"int8_{part}_ratio_{name}"] = lambda root, c=cap, p=part: f"{int8_ratio(root, c, p):.2f}×"
    values["int8_served_p50_ratio"] = lambda root: f"{served_int8_ratio(root):.2f}×"
    values["int8_served_p50_ratio_avx2"] = lambda root: f"{served_int8_ratio(root, 'AVX2'):.2f}×"
    values["int8_max_ap50_loss"] = lambda root: (
        f"{max(abs(r['ap50_loss']) for r in records(root, 'int8_accuracy')):.3f}")
    return values


def held_out(root, model, held_out_set, key):
    """A shipped model's figure on a held-out draw: the latest record of results/padding.jsonl."""
    return latest(records(root, "padding"), label=f"{model}, {held_out_set}")["unpadded"][key]


def held_out_values():
    """held_out_softmax_{square,padded}_{ap,ap50}: the shipped softmax on the held-out draws."""
    return {f"held_out_softmax_{short}_{key}": lambda root, s=held_out_set, k=key: f"{held_out(root, 'softmax', s, k):.3f}"
            for short, held_out_set in (("square", "square"), ("padded", "padded 192x128")) for key in ("ap", "ap50")}


# One number per fact: a figure written inline as <!-- value: NAME -->TEXT<!-- /value -->
# is rendered from these, wherever a page states it.
VALUES = {
    "attention_time_ratio_850": lambda root: f"{attention_ratio(root, 850):.2f}×",
    "attention_time_ratio_1400": lambda root: f"{attention_ratio(root, 1400):.2f}×",
    "attention_memory_share_1400": lambda root: f"{attention_ratio(root, 1400, 'peak_extra_MB'):.0%}",
    "attention_time_ratio_850_avx2": lambda root: f"{attention_ratio(root, 850, cap='AVX2'):.2f}×",
    "attention_time_ratio_1400_avx2": lambda root: f"{attention_ratio(root, 1400, cap='AVX2'):.2f}×",
    "r50_optimization_ratio": lambda root: f"{r50_ratio(root):.2f}×",
    "benchmarks_machine": lambda root: machine_text(attention_record(root)),
    **shapes_values(),
    **int8_values(),
    **held_out_values(),
}
VALUE = re.compile(r"(<!-- value: (\w+) -->)(.*?)(<!-- /value -->)")


def machine_text(record):
    m = record["machine"]
    return f"{record['date'][:10]}, {m['cpu']} with {', '.join(m['isa'])}, {m['cores']} cores"


def status(root):
    """The README's status paragraph: every figure from a record."""
    def ap(model, held_out_set, key="ap50"):
        return held_out(root, model, held_out_set, key)
    attention = attention_record(root)
    served = served_ratios(root)
    overhead = records(root, "serving_overhead")[-1]["rows"]
    photo, r50 = overhead["photograph JPEG, c=1"]["after_ms"], overhead["DETR-R50 800x1066 noise JPEG, c=1"]["after_ms"]
    lines = [
        "**Status.** Model core, serving, deployment and training are in place. On held-out draws "
        f"(200 images each, `results/padding.jsonl`) the default models reach AP50 {ap('softmax', 'square'):.3f} / "
        f"AP {ap('softmax', 'square', 'ap'):.3f} on square images and AP50 {ap('softmax', 'padded 192x128'):.3f} "
        f"padded to 192×128 (softmax), {ap('optimization-encoder', 'square'):.3f} / "
        f"{ap('optimization-encoder', 'square', 'ap'):.3f} and {ap('optimization-encoder', 'padded 192x128'):.3f} "
        f"(optimization in the encoder only), and {ap('optimization', 'square'):.3f} / "
        f"{ap('optimization', 'square', 'ap'):.3f} square but {ap('optimization', 'padded 192x128'):.3f} padded "
        "(optimization on every site, the spec's method, trained on square images only) "
        "([accuracy](docs/accuracy.md)).",
        f"Attention alone at 850 tokens with K = 5: optimization takes {attention_ratio(root, 850):.2f}× softmax's "
        f"time, and at 1,400 tokens {attention_ratio(root, 1400, 'peak_extra_MB'):.0%} of its extra memory; "
        f"DETR-R50 at 800×1066 with optimization at every site takes {r50_ratio(root):.2f}× the softmax model's "
        f"forward time (`results/benchmarks.jsonl`, {machine_text(attention)}).",
        f"Served on the real-traffic mix, DETR-R50 softmax took {min(served):.2f}–{max(served):.2f}× ONNX Runtime's "
        f"time in the {len(served)} runs that interleaved them (`results/traffic.jsonl`, the float32 rows of "
        "`results/traffic_int8.jsonl`; the 0.8× target is not "
        "shown to hold on this VM), and the server adds "
        f"{min(photo):.1f}–{max(photo):.1f} ms per request to a small model's forward pass for a 640×480 "
        f"photograph, {min(r50):.1f}–{max(r50):.1f} ms to DETR-R50's (`results/serving_overhead.jsonl`; "
        "[benchmarks](docs/benchmarks.md)).",
    ]
    return "".join(f"> {line}\n" for line in textwrap.wrap(" ".join(lines), 96))


def int8_speed(root):
    """Each int8_r50 record (one detr_forward_bench run, float32 and int8 side by side) as a row."""
    rows = []
    for r in records(root, "benchmarks"):
        if r["name"] != "int8_r50":
            continue
        b = r["benchmarks"]
        ms = {k.split("/", 1)[1] if k.startswith("r50_") else k.rsplit("/", 1)[1]: v["real_time_ms"]
              for k, v in b.items()}
        cap = r["machine"].get("onednn_max_cpu_isa") or "none"
        rows.append(f"| {run_label(r)} | {cap} | {ms['float32']:,.0f} | {ms['int8']:,.0f} | "
                    f"{ms['int8'] / ms['float32']:.2f}× | {ms['softmax']:,.0f} | {ms['softmax_int8']:,.0f} | "
                    f"{ms['softmax_int8'] / ms['softmax']:.2f}× |")
    columns = ["run", "ONEDNN_MAX_CPU_ISA", "backbone float32 ms:", "backbone int8 ms:", "int8 / float32:",
               "whole float32 ms:", "whole int8 ms:", "int8 / float32:"]
    return table(columns, rows)


def int8_r50_agreement(root):
    rows = [f"| {run_label(r)} | {r['images']} ({r['draw']}) | {r['max_logit_difference']:.3f} "
            f"(of {r['logit_range']:.1f}) | {r['max_probability_difference']:.4f} | {r['max_box_difference']:.4f} | "
            f"{r['top10_agreement']:.0%} |" for r in records(root, "int8_r50_agreement")]
    columns = ["run", "images", "largest logit difference:", "largest probability difference:",
               "largest box difference:", "top-10 queries agreeing:"]
    return table(columns, rows)


def int8_accuracy(root):
    """Each int8_accuracy record: a default model in float32 and int8 on a held-out draw."""
    rows = [f"| {run_label(r)} | {r['machine'].get('onednn_max_cpu_isa') or 'none'} | {r['label']} "
            f"({r['draw']}) | {r['float32']['ap']:.3f} | {r['int8']['ap']:.3f} | {r['float32']['ap50']:.3f} | "
            f"{r['int8']['ap50']:.3f} | {r['ap50_loss']:+.4f} |" for r in records(root, "int8_accuracy")]
    columns = ["run", "ONEDNN_MAX_CPU_ISA", "model, held-out set", "AP float32:", "AP int8:", "AP50 float32:",
               "AP50 int8:", "AP50 loss:"]
    return table(columns, rows)


TRANSCRIBED = ["accuracy_tables", "benchmark_tables"]


def training_curve(root):
    """Each record of results/training_curves.jsonl (server/tools/training_curve.py): one row per
    checkpoint, AP and AP50 on each selection set."""
    rows = []
    for r in records(root, "training_curves"):
        sets = list(r["sets"])
        for i, point in enumerate(r["curve"]):
            cells = [f"{run_label(r)} {r['label']}" if i == 0 else "",
                     f"{point['step']:,}" if "step" in point else point["model"]]
            cells += [f"{point[s]['ap']:.3f} / {point[s]['ap50']:.3f}" for s in sets]
            rows.append("| " + " | ".join(cells) + " |")
    first = records(root, "training_curves")[0]
    columns = ["run", "step:"] + [f"AP / AP50, {s} ({draw}):" for s, draw in first["sets"].items()]
    return table(columns, rows)


def transcribed_table(record):
    """A table of results/accuracy_tables.jsonl or benchmark_tables.jsonl: its header and rows as
    recorded, indented as the doc's list item holds it (the closing marker keeps that indent)."""
    indent = record.get("indent", "")

    def line(cells):
        return indent + "| " + " | ".join(cells) + " |"
    return "\n".join([line(record["header"]), line(record["separator"])] + [line(r) for r in record["rows"]]) + "\n" + indent


TABLES = {"status": status, "traffic": traffic, "padding": padding, "memory_limit": memory_limit, "padding_outputs": padding_outputs,
          "canvas_sweep": canvas_sweep, "serving_overhead": serving_overhead, "int8_speed": int8_speed,
          "int8_accuracy": int8_accuracy, "traffic_int8": lambda root: traffic(root, "traffic_int8"),
          "int8_r50_agreement": int8_r50_agreement, "training_curve": training_curve}


PROVENANCE = ("date", "commit", "command", "machine")


def without_provenance(root):
    """Records of results/ that cannot say where they came from: a field of PROVENANCE missing, or a
    machine that is not an object (server/tools/records.py writes {cpu, cores, isa, caps}; a table
    transcribed from a doc holds the doc's words as {description})."""
    missing = []
    for path in sorted((root / "results").glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line:
                continue
            record = json.loads(line)
            if any(k not in record for k in PROVENANCE) or not isinstance(record["machine"], dict):
                missing.append(f"{path.name}:{number}")
    return missing


def main():
    args = [a for a in sys.argv[1:] if a != "--check"]
    check = "--check" in sys.argv[1:]
    root = Path(args[0]) if args else Path(__file__).resolve().parents[2]
    stale = [f"{where} has no provenance ({', '.join(PROVENANCE)})" for where in without_provenance(root)]
    transcribed = {r["table"]: r for name in TRANSCRIBED for r in records(root, name)}
    for doc in DOCS:
        path = root / doc
        text = path.read_text()

        def render(match):
            name = match.group(2)
            if name in TABLES:
                fresh = TABLES[name](root)
            elif name in transcribed:
                fresh = transcribed_table(transcribed[name])
            else:
                raise SystemExit(f"{doc}: no table named '{name}' (known: {', '.join([*TABLES, *transcribed])})")
            if fresh != match.group(3):
                stale.append(f"{doc}: table '{name}'")
            return match.group(1) + fresh + match.group(4)

        def render_value(match):
            name = match.group(2)
            if name not in VALUES:
                raise SystemExit(f"{doc}: no value named '{name}' (known: {', '.join(VALUES)})")
            fresh = VALUES[name](root)
            if fresh != match.group(3):
                stale.append(f"{doc}: value '{name}'")
            return match.group(1) + fresh + match.group(4)

        rendered = VALUE.sub(render_value, BLOCK.sub(render, text))
        if not check and rendered != text:
            path.write_text(rendered)
    if check and stale:
        print("differs from results/ (run server/tools/render_results.py): " + "; ".join(stale))
        sys.exit(1)
    print("tables " + ("checked" if check else "rendered") + (": " + "; ".join(stale) if stale else ", all current"))


if __name__ == "__main__":
    main()
