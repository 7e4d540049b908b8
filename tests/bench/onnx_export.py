#!/usr/bin/python3
"""Exports the official DETR-R50 architecture to ONNX for the ONNX Runtime row
of the forward benchmark (onnxruntime_bench.js).

The model is pytorch_eager_reference.py's (the official architecture in stock
PyTorch modules) with the benchmark's weights; the export follows the
official repository's test_all.py: torch.onnx.export, opset 12, constant
folding. It also writes the benchmark's input (the eager reference's seeded
800x1066 image and its all-valid mask) and PyTorch's outputs for it, so the
ONNX Runtime run can check it computes the same thing.

    onnx_export.py WEIGHTS.safetensors OUT_DIR [--dynamic]
    -> OUT_DIR/detr-r50.onnx, pixels.f32, mask.u8, logits.f32, boxes.f32
    --dynamic: OUT_DIR/detr-r50-dynamic.onnx, with the image's height and
    width as dynamic axes (the official test_all.py's export for any image
    size), for the real-traffic benchmark (traffic_reference.py).
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_eager_reference as reference  # noqa: E402


def main():
    weights, out_dir = sys.argv[1], sys.argv[2]
    dynamic = "--dynamic" in sys.argv[3:]
    os.makedirs(out_dir, exist_ok=True)
    model = reference.DetrR50().eval()
    state = reference.safetensors_io.load(weights)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    pixels = torch.randn(1, 3, 800, 1066, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 800, 1066, dtype=torch.bool)
    with torch.no_grad():
        logits, boxes = model(pixels, mask)
        axes = {"pixels": {2: "height", 3: "width"}, "mask": {1: "height", 2: "width"}} if dynamic else None
        name = "detr-r50-dynamic.onnx" if dynamic else "detr-r50.onnx"
        torch.onnx.export(model, (pixels, mask), os.path.join(out_dir, name), opset_version=12,
                          do_constant_folding=True, input_names=["pixels", "mask"],
                          output_names=["pred_logits", "pred_boxes"], dynamic_axes=axes)
    pixels.numpy().tofile(os.path.join(out_dir, "pixels.f32"))
    mask.numpy().astype("uint8").tofile(os.path.join(out_dir, "mask.u8"))
    logits.numpy().tofile(os.path.join(out_dir, "logits.f32"))
    boxes.numpy().tofile(os.path.join(out_dir, "boxes.f32"))
    print(f"wrote {out_dir}/{name} (opset 12, torch {torch.__version__}) and the benchmark's input")


if __name__ == "__main__":
    main()
