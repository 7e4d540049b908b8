#!/usr/bin/python3
"""docs/accuracy-sample.png: the sample images of deploy/samples as each
default model detects them, from `detr-client detect --draw` folders.

    build/bin/detr-client detect --model softmax --draw /tmp/drawn/softmax deploy/samples/*.png
    build/bin/detr-client detect --model optimization --draw /tmp/drawn/optimization deploy/samples/*.png
    sample_figure.py docs/accuracy-sample.png /tmp/drawn/softmax /tmp/drawn/optimization

SAMPLES=a.png,b.png in the environment picks other images of those folders
(docs/accuracy-large-sample.png: SAMPLES=shapes-512.png, through the large pair).
"""
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from torchvision.io import read_image  # noqa: E402

SAMPLES = os.environ.get("SAMPLES", "shapes.png,shapes-wide.png").split(",")


def main(out, *folders):
    widths = [read_image(str(Path(folders[0]) / name)).shape[2] for name in SAMPLES]
    # One image: the models side by side; several: a row per model.
    rows, cols = (1, len(folders)) if len(SAMPLES) == 1 else (len(folders), len(SAMPLES))
    fig, axes = plt.subplots(rows, cols, figsize=(10, 3.4 * rows * (1.5 if len(SAMPLES) == 1 else 1)),
                             gridspec_kw={"width_ratios": widths * (cols // len(widths))}, squeeze=False)
    for row, folder in enumerate(folders):
        for col, name in enumerate(SAMPLES):
            image = read_image(str(Path(folder) / name)).permute(1, 2, 0).numpy()
            axis = axes[0][row] if len(SAMPLES) == 1 else axes[row][col]
            axis.imshow(image)
            axis.set_title(f"{Path(folder).name}: {name}", fontsize=10)
            axis.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main(*sys.argv[1:])
