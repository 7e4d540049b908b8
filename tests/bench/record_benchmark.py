#!/usr/bin/python3
"""Runs a Google Benchmark binary of this project and appends what it measured as one record.

The record holds every benchmark's median real time (ms) and counters over the
repetitions, with the command, commit, date and machine (server/tools/records.py),
so that a figure a doc cites (the README's status paragraph, render_results.py)
comes from a record and not from a copied console line.

Usage: record_benchmark.py BINARY --name NAME --out FILE [--repetitions N] [--filter REGEX] [-- flags...]
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server" / "tools"))
from records import provenance, write_record  # noqa: E402

UNIT_TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def medians(report):
    """{benchmark name: {"real_time_ms": ..., counters...}} from the median aggregates."""
    out = {}
    for b in report["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"]
        figures = {"real_time_ms": b["real_time"] * UNIT_TO_MS[b.get("time_unit", "ns")]}
        for key, value in b.items():
            if key in ("GFLOPs", "peak_extra_MB", "peak_MB", "tokens", "threads"):
                figures[key] = value
        out[name] = figures
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("--name", required=True, help="what the record measures, e.g. attention")
    parser.add_argument("--out", required=True)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--filter", default=".")
    args, extra = parser.parse_known_args()  # the rest (after --) goes to the binary
    command = [args.binary, *[a for a in extra if a != "--"], f"--benchmark_filter={args.filter}",
               f"--benchmark_repetitions={args.repetitions}", "--benchmark_report_aggregates_only=true",
               "--benchmark_format=json"]
    print("running: " + " ".join(command), file=sys.stderr, flush=True)
    report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    record = {"name": args.name, "repetitions": args.repetitions, "benchmarks": medians(report),
              "library_build_type": report.get("context", {}).get("library_build_type")}
    record.update(provenance(sys.argv))
    write_record(record, args.out)


if __name__ == "__main__":
    main()
