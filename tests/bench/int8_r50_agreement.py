#!/usr/bin/python3
"""DETR-R50 (seeded weights) in int8 against float32: how far its outputs move.

Draws square 800-px synthetic images (detr-data --seed 2027, which no
calibration or evaluation uses), normalises them as the server does, and runs
detr-predict --raw-input twice on the same weights: float32, then int8 with
the calibration detr_forward_bench wrote (BUILD/bench/detr-r50-seed0.int8.json;
random normal inputs, so this measures int8's rounding, not a tuned
calibration). Reports the largest differences of the logits, the class
probabilities and the boxes, and the agreement of the detections: of each
image's 10 highest-scoring float32 queries, the share that int8 gives the
same class with a box of IoU > 0.5. Appends one record to --out.

Usage: int8_r50_agreement.py BUILD_DIR [--images 4] [--out results/int8_r50_agreement.jsonl]
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server" / "tools"))
import safetensors_io  # noqa: E402
import records  # noqa: E402

MEAN, STD = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])


def pixel_values(folder, count):
    images = sorted(Path(folder).glob("*.png"))[:count]
    pixels = [torchvision.io.read_image(str(p)).float() / 255 for p in images]
    return torch.stack([(p - MEAN[:, None, None]) / STD[:, None, None] for p in pixels])


def box_iou(a, b):
    """IoU of (N, 4) boxes in (cx, cy, w, h), row by row."""
    def corners(x):
        return torch.cat([x[:, :2] - x[:, 2:] / 2, x[:, :2] + x[:, 2:] / 2], 1)
    return torchvision.ops.box_iou(corners(a), corners(b)).diagonal()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[2]
    weights = Path(args.build) / "bench" / "detr-r50-seed0.safetensors"
    calibration = weights.with_suffix(".int8.json")
    if not calibration.exists():
        raise SystemExit(f"{calibration} is absent: run detr_forward_bench (make bench-int8) first")
    work = Path(tempfile.mkdtemp(prefix="int8-r50-"))
    subprocess.run([f"{args.build}/bin/detr-data", "--output", str(work / "data"), "--seed", "2027", "--train", "0",
                    "--val", str(args.images), "--size", "800"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    pixels = pixel_values(work / "data" / "val", args.images)
    safetensors_io.save(str(work / "input.safetensors"),
                        {"pixel_values": pixels, "pixel_mask": torch.zeros(pixels.shape[0], *pixels.shape[2:],
                                                                            dtype=torch.uint8)})
    outputs = {}
    for precision, extra in (("float32", []), ("int8", ["--int8-calibration", str(calibration)])):
        out = work / f"{precision}.safetensors"
        subprocess.run([f"{args.build}/bin/detr-predict", "--model-config", str(root / "tests/bench/detr_r50.json"),
                        "--weights", str(weights), "--raw-input", str(work / "input.safetensors"),
                        "--raw-output", str(out), "--threads", "2", *extra], check=True, stderr=subprocess.DEVNULL)
        outputs[precision] = safetensors_io.load(str(out))
    f, q = outputs["float32"], outputs["int8"]
    probabilities = [o["pred_logits"].softmax(-1) for o in (f, q)]
    agree = []
    for i in range(pixels.shape[0]):
        scores, classes = probabilities[0][i, :, :-1].max(-1)
        top = scores.topk(10).indices
        same_class = probabilities[1][i, top, :-1].argmax(-1) == classes[top]
        close = box_iou(f["pred_boxes"][i, top], q["pred_boxes"][i, top]) > 0.5
        agree.append((same_class & close).float().mean().item())
    record = {"label": "DETR-R50 seeded, int8 against float32", "images": pixels.shape[0],
              "draw": "detr-data --seed 2027 --size 800",
              "max_logit_difference": (f["pred_logits"] - q["pred_logits"]).abs().max().item(),
              "logit_range": f["pred_logits"].abs().max().item(),
              "max_probability_difference": (probabilities[0] - probabilities[1]).abs().max().item(),
              "max_box_difference": (f["pred_boxes"] - q["pred_boxes"]).abs().max().item(),
              "top10_agreement": sum(agree) / len(agree)}
    record.update(records.provenance(sys.argv))
    records.write_record(record, args.out)


if __name__ == "__main__":
    main()
