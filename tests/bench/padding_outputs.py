#!/usr/bin/python3
"""What padding into a canvas changes in DETR-R50's outputs (issue 35).

For a few images of the real-traffic mix (traffic_bench.py), resized by the
official 800/1333 rule, runs the served model core (detr-predict --raw-input:
the C++ DETR, oneDNN backbone, as detr-server runs it) twice: on the image at
its own size, and padded bottom/right into the smallest canvas of
tests/bench/traffic_r50.yaml with DETR's pixel mask marking the padding, as
the server's canvases and the official batched evaluation do. Compares the
100 queries' class probabilities (softmax of the logits) and boxes, and the
top class of each query; as a scale, the same figures between two different
images of the list, both unpadded (a model whose outputs barely depend on its
input would show small padding differences for that reason alone). Seeded weights (--random-init 0): the official
architecture's behaviour under padding, not a trained model's accuracy,
which padding_accuracy.py measures on the trained default models.
Appends one record per model config to --out.

Usage: padding_outputs.py BUILD_DIR [--out results/padding_outputs.jsonl]
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server" / "tools"))
import safetensors_io  # noqa: E402
from records import provenance, write_record  # noqa: E402
from traffic_bench import official_size, photo  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODELS = ["deploy/models/detr-r50-softmax.json", "deploy/models/detr-r50-optimization.json"]
IMAGES = [(600, 800), (800, 600), (900, 450), (450, 900), (900, 720), (1024, 768)]  # (height, width) before resizing
MEAN, STD = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])


def canvases():
    config = yaml.safe_load((ROOT / "tests/bench/traffic_r50.yaml").read_text())
    return [tuple(c) for c in config["models"][0]["preprocessing"]["canvases"]]


def pixels(h, w):
    """traffic_bench's photograph (without JPEG), normalised as the official transform does."""
    return (photo(h, w) / 255 - MEAN.view(3, 1, 1)) / STD.view(3, 1, 1)


def resized_inputs(h, w):
    """(unpadded pixel_values, mask), (padded pixel_values, mask), the canvas."""
    rh, rw = official_size(h, w)
    values = torch.nn.functional.interpolate(pixels(h, w)[None], size=(rh, rw), mode="bilinear",
                                             align_corners=False)
    canvas = min((c for c in canvases() if c[0] >= rh and c[1] >= rw), key=lambda c: c[0] * c[1])
    padded = torch.zeros(1, 3, *canvas)
    padded[:, :, :rh, :rw] = values
    mask = torch.ones(1, *canvas, dtype=torch.bool)
    mask[:, :rh, :rw] = False
    return (values, torch.zeros(1, rh, rw, dtype=torch.bool)), (padded, mask), (rh, rw), canvas


def predict(build, model_config, values, mask, work):
    raw_in, raw_out = work / "in.safetensors", work / "out.safetensors"
    safetensors_io.save(raw_in, {"pixel_values": values, "pixel_mask": mask})
    subprocess.run([f"{build}/bin/detr-predict", "--model-config", str(ROOT / model_config), "--random-init", "0",
                    "--raw-input", str(raw_in), "--raw-output", str(raw_out)], check=True)
    out = safetensors_io.load(raw_out)
    return out["pred_logits"][0], out["pred_boxes"][0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="padding-outputs-"))
    for model_config in MODELS:
        images, previous = [], None
        for h, w in IMAGES:
            (values, mask), (padded, padded_mask), size, canvas = resized_inputs(h, w)
            logits, boxes = predict(args.build, model_config, values, mask, work)
            padded_logits, padded_boxes = predict(args.build, model_config, padded, padded_mask, work)
            probs, padded_probs = logits.softmax(-1), padded_logits.softmax(-1)
            images.append({"resized": f"{size[0]}x{size[1]}", "canvas": f"{canvas[0]}x{canvas[1]}",
                           "padded_fraction": 1 - size[0] * size[1] / (canvas[0] * canvas[1]),
                           "max_abs_logit": float((logits - padded_logits).abs().max()),
                           "max_abs_probability": float((probs - padded_probs).abs().max()),
                           "max_abs_box": float((boxes - padded_boxes).abs().max()),
                           "mean_abs_box": float((boxes - padded_boxes).abs().mean()),
                           "top_class_agreement": float((probs.argmax(-1) == padded_probs.argmax(-1)).float().mean())})
            if previous is not None:  # the scale: another image, both unpadded
                images[-1]["other_image_max_abs_logit"] = float((logits - previous[0]).abs().max())
                images[-1]["other_image_max_abs_box"] = float((boxes - previous[1]).abs().max())
            previous = (logits, boxes)
            print(f"{model_config}: {images[-1]}", flush=True)
        record = {"model_config": model_config, "weights": "seeded (--random-init 0)", "images": images}
        record.update(provenance(sys.argv))
        write_record(record, args.out)


if __name__ == "__main__":
    main()
