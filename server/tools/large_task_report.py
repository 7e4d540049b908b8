#!/usr/bin/env python3
"""The accuracy table of a train_large_task.sh run: each row's training and its
`detr-client eval` figures on the 512-px validation set.

    large_task_report.py OUT_DIR NAME=DIR... [--record large-task-run]

Reads OUT_DIR/eval/NAME.json (the served model NAME) and OUT_DIR/DIR/train.log
and model.safetensors (its training run); prints a Markdown table
(with --record, also a record of it in results/accuracy_tables.jsonl).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_report import figure, fmt, read_log, record_option, table_rows  # noqa: E402

FIGURES = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ar100")


def main():
    args, record = record_option(sys.argv[1:])
    if len(args) < 2:
        sys.exit(__doc__)
    out, rows_named = Path(args[0]), [a.split("=", 1) for a in args[1:]]
    header = ["row", "training", "AP", "AP50", "AP75", "AP small", "AP medium", "AR@100", "inference p50 (ms)",
              "inference memory p50 (MB)"]
    rows = []
    for row, run in rows_named:
        steps, _, minutes, rate = read_log(out / run / "train.log")
        cells = [f"{row} ({run})", f"{steps[-1] if steps else 0} steps, {minutes:.0f} min ({rate:.1f} img/s)"]
        cells += [fmt(figure(out, row, k)) for k in FIGURES]
        cells += [fmt(figure(out, row, "inference_p50_seconds"), 1e3, 1),
                  fmt(figure(out, row, "inference_memory_p50_bytes"), 1e-6, 1)]
        rows.append(cells)
    table_rows(header, rows, record, [out / run / "model.safetensors" for _, run in rows_named])


if __name__ == "__main__":
    main()
