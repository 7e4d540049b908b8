#!/usr/bin/python3
"""Draws the sample image shipped in deploy/samples (flat shapes on a noisy
background), deterministically, with Debian's torch/torchvision.

Square, like the 128-px images the default models were trained on (detr-data):
the models saw no other aspect ratio, and the sine position embedding of a
wider image puts its boxes off horizontally. At 256 px the server's resize
(shortest edge 128) brings the shapes to the trained 15-60 px."""
import sys

import torch
from torchvision.io import write_png


def main(path, size=256):
    g = torch.Generator().manual_seed(7)
    image = torch.full((3, size, size), 200.0) + torch.randn(3, size, size, generator=g) * 6
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    circle = (ys - 80) ** 2 + (xs - 70) ** 2 < 45 ** 2                       # box [25, 35, 115, 125]
    square = (ys >= 140) & (ys < 220) & (xs >= 130) & (xs < 210)             # box [130, 140, 210, 220]
    # A triangle as detr-data draws it: apex at the top middle of its box, base along the bottom.
    triangle = (ys >= 20) & (ys < 100) & ((xs - 190).abs() <= (ys - 20) * 0.5)  # box [150, 20, 230, 100]
    small = (ys - 200) ** 2 + (xs - 50) ** 2 < 18 ** 2                        # box [32, 182, 68, 218]
    for mask, colour in ((circle, (220, 40, 40)), (square, (40, 90, 210)), (triangle, (40, 170, 60)),
                         (small, (240, 200, 40))):
        for c in range(3):
            image[c][mask] = colour[c]
    write_png(image.clamp(0, 255).to(torch.uint8), path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "deploy/samples/shapes.png")
