#!/usr/bin/python3
"""Plots attention_bench's JSON output: time and peak extra memory against
tokens, per attention type (encoder self-attention shapes).

    attention_bench --benchmark_format=json --benchmark_out=attention.json --benchmark_out_format=json
    plot_attention_bench.py attention.json docs/attention-bench.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(source, target):
    runs = json.load(open(source))["benchmarks"]
    series = {}
    for run in runs:
        name = run["name"]
        kind = name.split("/")[0]
        if "/encoder.self/" not in name or kind.count("_") > 1:
            continue  # one-point rows (dense coefficients, other backends): in the table only
        series.setdefault(kind, []).append((run["tokens"], run["real_time"], run["peak_extra_MB"]))
    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind, points in sorted(series.items()):
        points.sort()
        tokens = [p[0] for p in points]
        style = "-o" if kind == "softmax" else ":o" if kind == "softmax_unfused" else "--s"
        time_axis.plot(tokens, [p[1] for p in points], style, label=kind)
        memory_axis.plot(tokens, [p[2] for p in points], style, label=kind)
    time_axis.set(title="Encoder self-attention: time per call", xlabel="tokens (n = m)", ylabel="ms", yscale="log")
    memory_axis.set(title="Peak extra memory per call", xlabel="tokens (n = m)", ylabel="MB")
    for axis in (time_axis, memory_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    sgemm = next((r["GFLOPs"] for r in runs if r["name"].startswith("sgemm")), None)
    figure.suptitle("batch 1, 8 heads, head width 32" + (f"; sgemm {sgemm:.0f} GFLOP/s on this machine" if sgemm else ""))
    figure.tight_layout()
    figure.savefig(target, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
