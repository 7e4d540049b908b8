#!/usr/bin/python3
"""A training run's curve: each checkpoint it kept, evaluated on the selection sets.

`detr-train --keep-checkpoints` leaves RUN/checkpoint-STEP.safetensors at every checkpoint.
This serves them all, and RUN/model.safetensors (the end of the run), in one detr-server on
127.0.0.1, evaluates each with `detr-client eval` on every --set, and appends one record to
--out: the figures per step and set, the sets' draws, the run's length and rate from its log,
and the hash of the last model measured (the run's end, or the last --also). The sets are the
ones a model is chosen on; held-out draws are measured elsewhere (tests/bench/padding_accuracy.py),
so that choosing and testing never share a set.

Usage: training_curve.py BUILD_DIR RUN_DIR --model-config C.json
         --set NAME=DATA_DIR=DRAW ... [--also LABEL=WEIGHTS ...] [--preprocessing 128,213] [--label L]
         [--training-command "detr-train ..."] [--out F]
  DATA_DIR holds val.json and val/ (detr-data's output); DRAW is the detr-data command line
  that drew it, for the record.
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "bench"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402
import traffic_bench  # noqa: E402
from accuracy_report import read_log  # noqa: E402

FIGURES = ("ap", "ap50", "ap75")


def checkpoints(run):
    """(step, path) of each kept checkpoint, in order, then the final model as its last step."""
    kept = sorted((int(re.search(r"checkpoint-(\d+)", p.name)[1]), p) for p in run.glob("checkpoint-*.safetensors"))
    final = run / "model.safetensors"
    if final.exists():
        state = json.loads((run / "state.json").read_text()) if (run / "state.json").exists() else {}
        kept = [(s, p) for s, p in kept if s != state.get("step")] + [(state.get("step", -1), final)]
    return kept


def config_text(model_config, models, preprocessing):
    """A detr-server configuration serving each (name, weights) of `models`."""
    shortest, longest = preprocessing
    lines = ["intra_op_threads: 0", "models:"]
    for name, path in models:
        entry = {"name": name, "model_config": str(Path(model_config).resolve()),
                 "weights": str(path.resolve()), "preprocessing": {"shortest_edge": shortest, "longest_edge": longest}}
        lines.append("  - " + json.dumps(entry))
    return "\n".join(lines) + "\n"


def evaluate(build, target, data, model, out):
    subprocess.run([f"{build}/bin/detr-client", "--target", target, "eval", "--annotations", str(data / "val.json"),
                    "--images", str(data / "val"), "--model", model, "--json", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    figures = next(iter(json.loads(out.read_text()).values()))
    return {k: round(figures[k], 4) for k in FIGURES}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build")
    parser.add_argument("run", type=Path)
    parser.add_argument("--model-config", required=True)
    parser.add_argument("--set", action="append", required=True, help="NAME=DATA_DIR=DRAW")
    parser.add_argument("--preprocessing", default="128,213", help="SHORTEST,LONGEST edge")
    parser.add_argument("--also", action="append", default=[],
                        help="LABEL=WEIGHTS: another model made from the run (e.g. the checkpoints' average), "
                        "measured the same way")
    parser.add_argument("--label", default="")
    parser.add_argument("--training-command", default="", help="the detr-train command line of the run")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    sets = [s.split("=", 2) for s in args.set]
    points = checkpoints(args.run)
    if not points:
        raise SystemExit(f"{args.run}: no checkpoint-*.safetensors (detr-train --keep-checkpoints) and no model")
    work = Path(tempfile.mkdtemp(prefix="training-curve-"))
    # (served name, weights, the row's key in the curve) of every model measured.
    served = [(f"step-{step}", path, {"step": step}) for step, path in points]
    served += [(f"also-{i}", Path(a.split("=", 1)[1]), {"model": a.split("=", 1)[0]}) for i, a in enumerate(args.also)]
    (work / "config.yaml").write_text(config_text(args.model_config, [(name, path) for name, path, _ in served],
                                                  [int(v) for v in args.preprocessing.split(",")]))
    curve = []
    with open(work / "server.log", "w") as log, traffic_bench.Server(args.build, str(work / "config.yaml"), log) as server:
        target = f"127.0.0.1:{server.ports['grpc']}"
        for model, _, key in served:
            row = dict(key)
            for name, data, _ in sets:
                row[name] = evaluate(args.build, target, Path(data), model, work / f"{name}-{model}.json")
            print(json.dumps(row), flush=True)
            curve.append(row)
    steps, _, minutes, rate = read_log(args.run / "train.log")
    record = {"label": args.label or args.run.name, "run": str(args.run), "model_config": args.model_config,
              "sets": {name: draw for name, _, draw in sets}, "purpose": "selection (held-out draws: padding.jsonl)",
              "curve": curve,
              "training": {"command": args.training_command, "steps": steps[-1] if steps else 0,
                           "minutes": round(minutes, 1), "images_per_second": round(rate, 1)},
              "final_model_sha256": records.file_hash(served[-1][1])}
    record.update(records.provenance(sys.argv))
    records.write_record(record, args.out)


if __name__ == "__main__":
    main()
