#!/usr/bin/python3
"""Draws the sample images shipped in deploy/samples (flat shapes on a noisy
background), deterministically, with Debian's torch/torchvision:

    shapes.png       256 x 256
    shapes-wide.png  384 x 256 (3:2, as most photographs), shapes up to its right edge

The server's resize (shortest edge 128) brings their shapes to the 15-60 px
the default models were trained on (detr-data). tests/service/default_models_test.cc
holds each shape's box.

    make_sample_image.py [DIR]   (default: deploy/samples)"""
import sys
from pathlib import Path

import torch
from torchvision.io import write_png


def draw(path, width, height, shapes, seed=7):
    """SHAPES: (kind, box x0 y0 x1 y1, colour); a triangle as detr-data draws
    it, apex at the top middle of its box, base along the bottom."""
    g = torch.Generator().manual_seed(seed)
    image = torch.full((3, height, width), 200.0) + torch.randn(3, height, width, generator=g) * 6
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for kind, (x0, y0, x1, y1), colour in shapes:
        cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
        if kind == "circle":
            mask = (ys - cy) ** 2 + (xs - cx) ** 2 < r ** 2
        elif kind == "square":
            mask = (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)
        else:
            mask = (ys >= y0) & (ys < y1) & ((xs - cx).abs() <= (ys - y0) * 0.5)
        for c in range(3):
            image[c][mask] = colour[c]
    write_png(image.clamp(0, 255).to(torch.uint8), str(path))


SQUARE = [("circle", (25, 35, 115, 125), (220, 40, 40)), ("square", (130, 140, 210, 220), (40, 90, 210)),
          ("triangle", (150, 20, 230, 100), (40, 170, 60)), ("circle", (32, 182, 68, 218), (240, 200, 40))]
WIDE = [("circle", (290, 30, 370, 110), (220, 40, 40)), ("square", (40, 150, 120, 230), (40, 90, 210)),
        ("triangle", (200, 140, 280, 220), (40, 170, 60)), ("circle", (82, 42, 118, 78), (240, 200, 40)),
        ("square", (310, 170, 360, 220), (150, 60, 170))]


def main(folder):
    Path(folder).mkdir(parents=True, exist_ok=True)
    draw(Path(folder) / "shapes.png", 256, 256, SQUARE)
    draw(Path(folder) / "shapes-wide.png", 384, 256, WIDE, seed=8)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "deploy/samples")
