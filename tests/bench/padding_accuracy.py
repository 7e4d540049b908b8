#!/usr/bin/python3
"""What padding into canvases does to the default models' accuracy, on held-out draws.

Serves each default model twice in one detr-server: as shipped (the official
resize, each image at its own size) and with canvases [[128, 128], [128, 224],
[224, 128]] (resized, then padded with DETR's pixel mask). Evaluates both with
`detr-client eval` on two held-out synthetic draws that no test and no model
selection used: square 128-px images (seed 101, which land exactly on the
128x128 canvas) and 128-px content on 192x128 canvases of background (seed
103, resized to 128x192 and padded to 128x224). Appends one record per model
and set to --out.

Usage: padding_accuracy.py BUILD_DIR [--images 200] [--out results/padding.jsonl]
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server" / "tools"))
import records  # noqa: E402
import traffic_bench  # noqa: E402

MODELS = ["softmax", "optimization", "optimization-encoder"]
CANVASES = [[128, 128], [128, 224], [224, 128]]
SETS = {"square": ["--seed", "101", "--size", "128"],
        "padded 192x128": ["--seed", "103", "--size", "128", "--pad-to", "192x128"]}
# The draws the shipped models and their configurations were chosen on
# (server/tools/train_default_models.sh, train_nonsquare_models.sh): never
# the ones measured here.
SELECTION_DRAWS = {"square": "--seed 7 --size 128 (validation split)",
                   "padded 192x128": "--seed 13 --size 128 --pad-to 192x128"}


def config_text(root):
    lines = ["intra_op_threads: 0", "models:"]
    for model in MODELS:
        files = {"model_config": f"{root}/deploy/models/default-{model}.json",
                 "weights": f"{root}/deploy/models/default-{model}.safetensors"}
        for name, extra in ((model, {}), (f"{model}-canvases", {"canvases": CANVASES})):
            preprocessing = {"shortest_edge": 128, "longest_edge": 213, **extra}
            lines.append("  - " + json.dumps({"name": name, **files, "preprocessing": preprocessing}))
    return "\n".join(lines) + "\n"


def setup(doc, prefix, config_text):
    """The common command line (BUILD_DIR, --images, --out), a work folder holding config.yaml
    from config_text(root), and the held-out sets drawn into it: (args, root, work)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[2]
    work = Path(tempfile.mkdtemp(prefix=prefix))
    (work / "config.yaml").write_text(config_text(root))
    draw_sets(args.build, work, args.images)
    return args, root, work


def draw_sets(build, work, images):
    """Draws each held-out set into work/<set's first word>/val."""
    for name, draw in SETS.items():
        subprocess.run([f"{build}/bin/detr-data", "--output", str(work / name.split()[0]), "--train", "0",
                        "--val", str(images), *draw], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def evaluate(build, target, work, set_name, model_a, model_b):
    """`detr-client eval` of two served models on a drawn set: figures by model."""
    data = work / set_name.split()[0]
    figures = work / f"{set_name.split()[0]}-{model_a}-{model_b}.json"
    subprocess.run([f"{build}/bin/detr-client", "--target", target, "eval",
                    "--annotations", str(data / "val.json"), "--images", str(data / "val"),
                    "--model-a", model_a, "--model-b", model_b, "--json", str(figures)],
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads(figures.read_text())


def model_hashes(root, model, *suffixes):
    """The first 16 hex digits of the sha256 of deploy/models/default-MODEL<suffix> files."""
    files = [f"default-{model}{suffix}" for suffix in suffixes]
    return {f: records.file_hash(root / "deploy" / "models" / f) for f in files}


def main():
    args, root, work = setup(__doc__, "padding-accuracy-", config_text)
    with open(work / "server.log", "w") as log, \
            traffic_bench.Server(args.build, str(work / "config.yaml"), log) as server:
        target = f"127.0.0.1:{server.ports['grpc']}"
        for name in SETS:
            for model in MODELS:
                result = evaluate(args.build, target, work, name, model, f"{model}-canvases")
                record = {"label": f"{model}, {name}", "set": name, "draw": " ".join(SETS[name]),
                          "selection_draw": SELECTION_DRAWS[name], "images": args.images, "canvases": CANVASES,
                          "model_sha256": model_hashes(root, model, ".json", ".safetensors")}
                for variant, key in (("unpadded", model), ("canvases", f"{model}-canvases")):
                    record[variant] = {k: result[key][k] for k in ("ap", "ap50", "ap75", "ar100")}
                record.update(records.provenance(sys.argv))
                records.write_record(record, args.out)


if __name__ == "__main__":
    main()
