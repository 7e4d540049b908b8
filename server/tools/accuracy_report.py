#!/usr/bin/env python3
"""The accuracy table (the paper's Table 1 layout) and the loss curves of a
train_default_models.sh run.

    accuracy_report.py OUT_DIR PNG [--record accuracy-shapes]

Reads OUT_DIR/eval/*.json (detr-client eval --json), OUT_DIR/ROW/train.log
(detr-train's progress lines) and OUT_DIR/ROW/model.safetensors (for the
parameter count); prints a Markdown table (with --record, also a record of it in
results/accuracy_tables.jsonl) and writes the loss curves to PNG.
"""
import json
import re
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from records import file_hash, provenance  # noqa: E402

ROWS = [
    ("softmax", "softmax (all sites)"),
    ("softmax-control", "softmax, fine-tuned as the rows below (control)"),
    ("identity-qk", "identity-QK softmax (all sites)"),
    ("optimization-encoder-self", "optimization at encoder.self"),
    ("optimization-decoder-self", "optimization at decoder.self"),
    ("optimization-decoder-cross", "optimization at decoder.cross"),
    ("optimization-all", "optimization (all sites)"),
]
STEP_LINE = re.compile(r"^step (\d+)(?:/\d+)? loss ([\d.]+) .*\| ([\d.]+) img/s, ([\d.]+) min")


def parameter_count(path):
    """Learned values in a safetensors file (batch-norm statistics excluded)."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    count = 0
    for name, entry in header.items():
        if name == "__metadata__" or re.search(r"running_(mean|var)$|num_batches_tracked$", name):
            continue
        n = 1
        for d in entry["shape"]:
            n *= d
        count += n
    return count


def read_log(path):
    steps, losses, minutes, rate = [], [], 0.0, 0.0
    if not path.exists():
        return steps, losses, minutes, rate
    offset = 0.0  # a resumed run restarts its clock
    last_minutes = 0.0
    for line in path.read_text().splitlines():
        m = STEP_LINE.match(line)
        if not m:
            continue
        step, loss, img_s, mins = int(m[1]), float(m[2]), float(m[3]), float(m[4])
        if steps and step <= steps[-1]:  # a restart from an earlier checkpoint: keep the newer lines
            while steps and steps[-1] >= step:
                steps.pop()
                losses.pop()
        if mins < last_minutes:
            offset += last_minutes
        last_minutes = mins
        steps.append(step)
        losses.append(loss)
        minutes, rate = offset + mins, img_s
    return steps, losses, minutes, rate


def figure(out, name, key):
    path = out / "eval" / f"{name}.json"
    if not path.exists():
        return None
    return next(iter(json.loads(path.read_text()).values()))[key]


def fmt(value, scale=1.0, digits=3):
    return "—" if value is None or value < 0 else f"{value * scale:.{digits}f}"


def table_rows(header, rows, record=None, models=(), results=None):
    """Prints a Markdown table (header: its cells; rows: lists of cells). With `record`, also
    appends it to results/accuracy_tables.jsonl as that table's newest record, which
    render_results.py renders wherever a doc names it: with the run's date, commit, machine,
    command and the sha256 (16 hex digits) of each model file in `models` (`results`: another
    file, for tests)."""
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" for _ in header) + " |")
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    if not record:
        return
    root = Path(__file__).resolve().parents[2]
    entry = {"table": record, "header": list(header), "separator": ["---"] * len(header), "rows": rows,
             "model_files": {str(m): file_hash(m) for m in models
                             if Path(m).exists()}}
    entry.update(provenance(sys.argv))
    with open(results or root / "results" / "accuracy_tables.jsonl", "a") as f:
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    print(f"record '{record}' appended to results/accuracy_tables.jsonl", file=sys.stderr)


def record_option(argv):
    """(argv without `--record NAME`, NAME or None)."""
    if "--record" not in argv:
        return argv, None
    i = argv.index("--record")
    return argv[:i] + argv[i + 2:], argv[i + 1]


def main():
    args, record = record_option(sys.argv[1:])
    out, png = Path(args[0]), Path(args[1])
    header = ["attention", "params", "inference p50 (ms)", "AP", "AP50", "AP75", "AP S", "AP M", "AP L",
              "AP50 before fine-tuning", "training"]
    rows = []
    for row, label in ROWS:
        weights = out / row / "model.safetensors"
        if not weights.exists():
            rows.append([label, "not trained"] + [""] * 9)
            continue
        steps, _, minutes, _ = read_log(out / row / "train.log")
        kind = "from scratch" if row == "softmax" else "fine-tuned from softmax"
        cells = [label, f"{parameter_count(weights) / 1e6:.2f} M", fmt(figure(out, row, "inference_p50_seconds"), 1e3, 1)]
        cells += [fmt(figure(out, row, k)) for k in ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")]
        cells.append(fmt(figure(out, f"{row}-no-finetune", "ap50")) if row not in ("softmax", "softmax-control") else "—")
        cells.append(f"{steps[-1] if steps else 0} steps, {minutes:.0f} min, {kind}")
        rows.append(cells)
    table_rows(header, rows, record, [out / row / "model.safetensors" for row, _ in ROWS])

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    steps, losses, _, _ = read_log(out / "softmax" / "train.log")
    left.plot(steps, losses, lw=0.8, color="black")
    left.set(title="softmax from scratch", xlabel="step (batch 32)", ylabel="set loss (with auxiliary layers)", yscale="log")
    left.grid(alpha=0.3)
    for row, label in ROWS[1:]:
        steps, losses, _, _ = read_log(out / row / "train.log")
        if steps:
            right.plot(steps, losses, lw=0.8, label=label)
    right.set(title="fine-tuning from the softmax weights", xlabel="fine-tuning step (batch 32)", yscale="log")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"\nloss curves: {png}", file=sys.stderr)


if __name__ == "__main__":
    main()
