#!/usr/bin/env python3
"""The rows of docs/accuracy.md's ablation table (issue 16), for
train_ablations.sh.

    ablation_rows.py configs OUT_DIR    writes OUT_DIR/ROW.json for every row and
                                        prints "ROW STEPS INIT" per line, in the
                                        order to train them (INIT: finetune or scratch)
    ablation_rows.py report OUT_DIR PNG [--record ablations-run]
                                        prints the Markdown table (with --record also
                                        a record of it in results/accuracy_tables.jsonl)
                                        and writes the rows' fine-tuning loss curves to PNG

Every row is optimization attention at all three sites, fine-tuned from the
default softmax model for 600 steps, as docs/accuracy.md's "optimization (all
sites)" row, with one thing changed. All rows train without dropout, as the
rows they are compared with did, except the row that adds it.
"""
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_report import figure, fmt, parameter_count, read_log, record_option, table_rows  # noqa: E402
from model_configs import SITES, configure, shipped  # noqa: E402

SELF_SITES = SITES[:2]
REFERENCE = {"type": "optimization", "iterations": 5, "lambda": 0.05, "normalizer": "relu_power", "power": 5}
FINETUNE_STEPS = 600


def row(name, group, label, options=None, sites=SITES, replace=False, steps=FINETUNE_STEPS, init="finetune", dropout=0.0,
        others=None):
    """One row: REFERENCE at every site, with OPTIONS over it at SITES (or
    OPTIONS instead of it with replace=True); OTHERS (e.g. "softmax") at the
    sites not in SITES instead of REFERENCE."""
    return dict(name=name, group=group, label=label, options=options or {}, sites=sites, replace=replace,
                steps=steps, init=init, dropout=dropout, others=others)


# In training order: the reference and the reviewers' baselines first, then
# the sweeps the reviewers named (K, λ, random tokens, top_k), the normaliser
# (top_k = 16 last: it cannot change anything at 16 tokens), then the long runs.
ROWS = [
    row("reference", "reference", "K = 5, λ = 0.05, ReLU power p = 5 (the spec's defaults)"),
    row("linear", "baselines", "linear attention (elu + 1), all sites", {"type": "linear"}, replace=True),
    row("pooling", "baselines", "mean pooling, all sites", {"type": "pooling"}, replace=True),
    # One site, softmax elsewhere: beside accuracy.md's "optimization at encoder.self" row.
    row("pooling-window3-encoder", "baselines", "pooling in a 3 × 3 window at encoder.self only, softmax elsewhere",
        {"type": "pooling", "window": 3}, sites=["encoder.self"], replace=True, others="softmax"),
    row("linear-encoder", "baselines", "linear attention at encoder.self only, softmax elsewhere",
        {"type": "linear"}, sites=["encoder.self"], replace=True, others="softmax"),
    *[row(f"k{k}", "K (unrolled ADMM steps)", f"K = {k}", {"iterations": k}) for k in (1, 2, 3, 10)],
    *[row(f"lambda{l}", "λ (sparsity weight)", f"λ = {l}", {"lambda": l}) for l in (0.01, 0.2)],
    *[r for m in (4, 16) for r in (
        row(f"random-tokens{m}", "random tokens", f"random_tokens = {m}, fixed draw", {"random_tokens": m}),
        row(f"random-tokens{m}-resample", "random tokens", f"random_tokens = {m}, redrawn every training step",
            {"random_tokens": m, "random_tokens_resample": "train"}))],
    row("top-k4", "top_k (sparsification)", "top_k = 4", {"top_k": 4}),
    *[row(f"relu-power{p}", "normaliser", f"ReLU power, p = {p}", {"power": p}) for p in (1, 3, 8)],
    row("abs-power5", "normaliser", "absolute power, p = 5", {"normalizer": "abs_power"}),
    row("normalizer-softmax", "normaliser", "softmax", {"normalizer": "softmax"}),
    row("include-self", "exclude_self", "exclude_self off (self-attention sites)", {"exclude_self": False}, sites=SELF_SITES),
    row("dropout", "training", "with dropout 0.1 (official training)", dropout=0.1),
    row("qk-projection", "projections (deviation)",
        "softmax's trained query/key projections kept, the LASSO solved on their output (`query_key_projection`)",
        {"query_key_projection": True}),
    row("top-k16", "top_k (sparsification)", "top_k = 16 (keeps every token at this size: ≤ 16 keys per site)", {"top_k": 16}),
    row("long-finetune", "training", "fine-tuned 3,000 steps (5× the budget)", steps=3000),
    row("from-scratch", "training", "trained from scratch, softmax's budget (6,000 steps)", steps=6000, init="scratch"),
]


STEP_MINUTES = re.compile(r"^step (\d+)(?:/\d+)? loss .*\| [\d.]+ img/s, ([\d.]+) min")


def active_minutes(log):
    """Minutes of training in a detr-train log, without pauses: each gap
    between progress lines counts at most 3x the run's median gap (a row
    paused with SIGSTOP, or resumed later, would otherwise count the wait)."""
    if not log.exists():
        return 0.0
    gaps, last = [], None
    for line in log.read_text().splitlines():
        m = STEP_MINUTES.match(line)
        if not m:
            continue
        minutes = float(m[2])
        if last is not None and minutes >= last:
            gaps.append(minutes - last)
        last = minutes
    if not gaps:
        return 0.0
    median = sorted(gaps)[len(gaps) // 2]
    return sum(min(gap, 3 * median) for gap in gaps)


def model_config(base, spec):
    attention = {}
    for site in SITES:
        options = dict(REFERENCE) if spec["others"] is None else spec["others"]
        if site in spec["sites"]:
            options = dict(spec["options"]) if spec["replace"] else options | spec["options"]
        attention[site] = options
    return configure(base, attention, spec["dropout"])


def write_configs(out):
    out.mkdir(parents=True, exist_ok=True)
    base = shipped("softmax")
    for spec in ROWS:
        (out / f"{spec['name']}.json").write_text(json.dumps(model_config(base, spec), indent=2) + "\n")
        print(spec["name"], spec["steps"], spec["init"])


def report(out, png, record=None):
    header = ["group", "row", "params", "inference p50 (ms)", "inference memory p50 (MB)", "AP", "AP50", "AP75",
              "AP S", "AP M", "training"]
    rows = []
    curves = []
    for spec in ROWS:
        name = spec["name"]
        weights = out / name / "model.safetensors"
        label = f"`{name}`: {spec['label']}"
        if not weights.exists() or not (out / "eval" / f"{name}.json").exists():
            rows.append([spec["group"], label, "not measured"] + [""] * 8)
            continue
        steps, losses, _, _ = read_log(out / name / "train.log")
        minutes = active_minutes(out / name / "train.log")
        rate = (steps[-1] if steps else 0) * 32 / max(minutes * 60, 1e-9)
        curves.append((name, steps, losses))
        kind = "from scratch" if spec["init"] == "scratch" else "fine-tuned from softmax"
        cells = [spec["group"], label, f"{parameter_count(weights) / 1e6:.2f} M",
                 fmt(figure(out, name, "inference_p50_seconds"), 1e3, 1),
                 fmt(figure(out, name, "inference_memory_p50_bytes"), 1e-6, 2)]
        cells += [fmt(figure(out, name, k)) for k in ("ap", "ap50", "ap75", "ap_small", "ap_medium")]
        cells.append(f"{steps[-1] if steps else 0} steps, {minutes:.1f} min ({rate:.0f} img/s), {kind}")
        rows.append(cells)
    table_rows(header, rows, record, [out / spec["name"] / "model.safetensors" for spec in ROWS])

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for name, steps, losses in curves:
        if name == "from-scratch":
            continue  # its scale is a different story
        ax.plot(steps, losses, lw=0.7, label=name)
    ax.set(title="ablations: fine-tuning loss after the swap", xlabel="fine-tuning step (batch 32)",
           ylabel="set loss (with auxiliary layers)", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"\nloss curves: {png}", file=sys.stderr)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "configs":
        write_configs(Path(sys.argv[2]))
    elif len(sys.argv) in (4, 6) and sys.argv[1] == "report":
        args, record = record_option(sys.argv[2:])
        report(Path(args[0]), Path(args[1]), record)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
