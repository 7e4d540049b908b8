#!/usr/bin/python3
"""What int8 costs the default models' accuracy, on held-out draws.

Serves each default model twice in one detr-server: in float32 and with
`precision: int8` (its shipped calibration, deploy/models/*.int8.json, drawn
from seed 2026). Evaluates both with `detr-client eval` on the held-out draws
of padding_accuracy.py (square 128-px images, seed 101; 128-px content on
192x128 canvases, seed 103), which neither calibration nor training used.
Appends one record per model and set to --out.

Usage: int8_accuracy.py BUILD_DIR [--images 200] [--out results/int8_accuracy.jsonl]
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server" / "tools"))
import padding_accuracy  # noqa: E402
import records  # noqa: E402
import traffic_bench  # noqa: E402

MODELS = padding_accuracy.MODELS


def config_text(root):
    lines = ["intra_op_threads: 0", "models:"]
    for model in MODELS:
        files = {"model_config": f"{root}/deploy/models/default-{model}.json",
                 "weights": f"{root}/deploy/models/default-{model}.safetensors",
                 "preprocessing": {"shortest_edge": 128, "longest_edge": 213}}
        lines.append("  - " + json.dumps({"name": model, **files}))
        lines.append("  - " + json.dumps({"name": f"{model}-int8", **files, "precision": "int8"}))
    return "\n".join(lines) + "\n"


def main():
    args, root, work = padding_accuracy.setup(__doc__, "int8-accuracy-", config_text)
    with open(work / "server.log", "w") as log, \
            traffic_bench.Server(args.build, str(work / "config.yaml"), log) as server:
        target = f"127.0.0.1:{server.ports['grpc']}"
        for name in padding_accuracy.SETS:
            for model in MODELS:
                result = padding_accuracy.evaluate(args.build, target, work, name, model, f"{model}-int8")
                record = {"label": f"{model}, {name}", "set": name, "draw": " ".join(padding_accuracy.SETS[name]),
                          "calibration_draw": "detr-data --seed 2026 (server/tools/calibrate_default_models.sh)",
                          "images": args.images,
                          "model_sha256": padding_accuracy.model_hashes(root, model, ".json", ".safetensors",
                                                                        ".int8.json")}
                for variant, key in (("float32", model), ("int8", f"{model}-int8")):
                    record[variant] = {k: result[key][k] for k in ("ap", "ap50", "ap75", "ar100")}
                record["ap50_loss"] = round(record["float32"]["ap50"] - record["int8"]["ap50"], 4)
                record["ap_loss"] = round(record["float32"]["ap"] - record["int8"]["ap"], 4)
                print(f"{record['label']}: AP50 {record['float32']['ap50']:.3f} -> {record['int8']['ap50']:.3f}, "
                      f"AP {record['float32']['ap']:.3f} -> {record['int8']['ap']:.3f}", flush=True)
                record.update(records.provenance(sys.argv))
                records.write_record(record, args.out)
    log_text = (work / "server.log").read_text()
    for line in log_text.splitlines():
        if "backbone convolutions" in line and "int8" in line:
            print(line)


if __name__ == "__main__":
    main()
