#!/usr/bin/python3
"""Draws the sample image shipped in deploy/samples (a few flat shapes on a
noisy background), deterministically, with Debian's torch/torchvision."""
import sys

import torch
from torchvision.io import write_png


def main(path, height=240, width=320):
    g = torch.Generator().manual_seed(7)
    image = torch.full((3, height, width), 200.0) + torch.randn(3, height, width, generator=g) * 6
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    circle = (ys - 80) ** 2 + (xs - 90) ** 2 < 45 ** 2
    square = (ys > 110) & (ys < 200) & (xs > 170) & (xs < 260)
    triangle = (ys > 30) & (ys < 110) & ((xs - 250).abs() < (ys - 30) * 0.6)
    for mask, colour in ((circle, (220, 40, 40)), (square, (40, 90, 210)), (triangle, (40, 170, 60))):
        for c in range(3):
            image[c][mask] = colour[c]
    write_png(image.clamp(0, 255).to(torch.uint8), path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "deploy/samples/shapes.png")
