#!/usr/bin/python3
"""The real-traffic mix (traffic_bench.py) through the engines users would pick instead.

Runs the official DETR-R50 on every request's resized shape of the mix, in the
mix's order, for ROUNDS rounds at batch 1 with 2 threads, on the seeded weights
the C++ benchmarks use (BUILD_DIR/bench/detr-r50-seed0.safetensors):
  - eager: PyTorch in this process (pytorch_eager_reference.DetrR50);
  - onnxruntime: onnxruntime-node on the official model exported with dynamic
    height and width (onnx_export.py --dynamic), in a process of its own.
Both see the model's input only (no decoding, no resizing, no HTTP): they are
the model's cost, the served figures are a request's. Reports p50 / p99 after
the first round, the first and warm median per shape, and the RSS after the
first round and at the end; appends one JSON record to --out.

Usage: traffic_reference.py BUILD_DIR --engine eager|onnxruntime [--rounds N] [--out FILE]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "server", "tools"))
import records  # noqa: E402
import traffic_bench  # noqa: E402


def run_eager(weights, shapes, rounds, threads):
    import torch
    import pytorch_eager_reference as reference
    torch.set_num_threads(threads)
    model = reference.DetrR50().eval()
    model.load_state_dict(reference.safetensors_io.load(weights), strict=False)
    seconds, rss_after_round_1 = [], 0
    with torch.no_grad():
        for r in range(rounds):
            for h, w in shapes:
                pixels = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(h * 7919 + w))
                mask = torch.zeros(1, h, w, dtype=torch.bool)
                start = time.perf_counter()
                model(pixels, mask)
                seconds.append(time.perf_counter() - start)
            if r == 0:
                rss_after_round_1 = traffic_bench.rss_bytes(os.getpid())
    return seconds, rss_after_round_1, traffic_bench.rss_bytes(os.getpid())


def onnxruntime_command(build, weights, shapes, threads):
    """The command that runs ONNX Runtime on `shapes` (the model exported and the runtime installed on first use),
    and the shapes file it reads (kept until the caller's process ends)."""
    bench = Path(build) / "bench"
    model = bench / "onnx" / "detr-r50-dynamic.onnx"
    if not model.exists():
        subprocess.run(["/usr/bin/python3", "tests/bench/onnx_export.py", weights, str(model.parent), "--dynamic"],
                       check=True)
    runtime = bench / "onnxruntime"
    if not (runtime / "node_modules" / "onnxruntime-node").exists():
        runtime.mkdir(parents=True, exist_ok=True)
        (runtime / "package.json").write_text(Path("tests/bench/package.json").read_text())
        subprocess.run(["npm", "install", "--prefix", str(runtime), "--ignore-scripts", "--no-audit", "--no-fund"],
                       check=True, stdout=subprocess.DEVNULL)
    script = runtime / "onnxruntime_traffic.js"
    script.write_text(Path("tests/bench/onnxruntime_traffic.js").read_text())
    shapes_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump([list(s) for s in shapes], shapes_file)
    shapes_file.close()
    return ["node", str(script), str(model), shapes_file.name, "--threads", str(threads)]


def seeded_weights(build):
    """The seeded DETR-R50 weights the C++ benchmarks use (written by detr_forward_bench on first use)."""
    weights = str(Path(build) / "bench" / "detr-r50-seed0.safetensors")
    if not Path(weights).exists():
        subprocess.run([f"{build}/bin/detr_forward_bench", f"--weights={weights}", "--benchmark_filter=none"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return weights


def run_onnxruntime(build, weights, shapes, rounds, threads):
    command = onnxruntime_command(build, weights, shapes, threads)
    out = subprocess.run(command + ["--rounds", str(rounds)], check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["seconds"], result["rss_after_round_1"], result["rss_end"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build")
    parser.add_argument("--engine", choices=["eager", "onnxruntime"], required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    weights = seeded_weights(args.build)
    shapes = [traffic_bench.official_size(*s) for s in traffic_bench.mix()]
    if args.engine == "eager":
        seconds, rss1, rss_end = run_eager(weights, shapes, args.rounds, args.threads)
    else:
        seconds, rss1, rss_end = run_onnxruntime(args.build, weights, shapes, args.rounds, args.threads)
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")  # caps PyTorch's oneDNN; ONNX Runtime picks by CPUID alone
    label = f"{args.engine} (ONEDNN_MAX_CPU_ISA={cap})" if cap else args.engine
    record = {"label": label, "model": "detr-r50 (official architecture, seeded weights)",
              "distinct_inputs": len(set(shapes)), "requests_per_round": len(shapes), "rounds": args.rounds,
              "rss_after_round_1_mb": rss1 / 2**20, "rss_end_mb": rss_end / 2**20}
    record.update(traffic_bench.latency_figures(shapes * args.rounds, seconds, len(shapes)))
    record.update(records.provenance(sys.argv))
    records.write_record(record, args.out)


if __name__ == "__main__":
    main()
