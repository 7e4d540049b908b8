#!/usr/bin/env python3
"""docs/accuracy.md's non-square table from train_nonsquare_models.sh's
measurements: each model (the square defaults and their non-square
fine-tunings) on each validation set, through the server.

    nonsquare_report.py OUT_DIR [--record nonsquare-run]
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_report import fmt, read_log, record_option, table_rows  # noqa: E402

MODELS = [
    ("square-softmax", "softmax, square training only (shipped before)", None),
    ("square-optimization", "optimization (all sites), square training only (shipped before)", None),
    ("softmax-resize", "softmax, fine-tuned on mixed aspect ratios + random resize (shipped until 2026-12-07)",
     "softmax-resize"),
    ("softmax", "softmax, fine-tuned on mixed aspect ratios, half of them square, lr 1e-4 (**shipped**)", "softmax"),
    ("optimization", "optimization (all sites), the square model fine-tuned the same way", "optimization"),
    ("optimization-encoder", "optimization at encoder.self, softmax elsewhere: the swap on the softmax above, "
     "fine-tuned the same way", "optimization-encoder"),
]
SETS = [("square", "square 128 px"), ("padded", "padded to 192×128"), ("mixed", "mixed sizes")]


def figures(out, data_set, name):
    path = out / f"eval-{data_set}" / f"{name}.json"
    return next(iter(json.loads(path.read_text()).values())) if path.exists() else {}


def main():
    args, record = record_option(sys.argv[1:])
    out = Path(args[0])
    header = ["model"] + [f"AP50 / AP, {label}" for _, label in SETS] + ["inference p50 (ms), padded", "training"]
    rows = []
    for name, label, run in MODELS:
        cells = [label]
        for data_set, _ in SETS:
            f = figures(out, data_set, name)
            cells.append(f"{fmt(f.get('ap50'))} / {fmt(f.get('ap'))}")
        cells.append(fmt(figures(out, "padded", name).get("inference_p50_seconds"), 1e3, 1))
        if run is None:
            cells.append("docs/accuracy.md's rows above")
        else:
            steps, _, minutes, rate = read_log(out / run / "train.log")
            cells.append(f"{steps[-1] if steps else 0} steps, {minutes:.0f} min ({rate:.0f} img/s)")
        rows.append(cells)
    table_rows(header, rows, record, [out / run / "model.safetensors" for _, _, run in MODELS if run])


if __name__ == "__main__":
    main()
