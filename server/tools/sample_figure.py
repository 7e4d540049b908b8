#!/usr/bin/python3
"""docs/accuracy-sample.png: the sample images of deploy/samples as each
default model detects them, from `detr-client detect --draw` folders.

    build/bin/detr-client detect --model softmax --draw /tmp/drawn/softmax deploy/samples/*.png
    build/bin/detr-client detect --model optimization --draw /tmp/drawn/optimization deploy/samples/*.png
    sample_figure.py docs/accuracy-sample.png /tmp/drawn/softmax /tmp/drawn/optimization
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from torchvision.io import read_image  # noqa: E402

SAMPLES = ["shapes.png", "shapes-wide.png"]


def main(out, *folders):
    widths = [read_image(str(Path(folders[0]) / name)).shape[2] for name in SAMPLES]
    fig, axes = plt.subplots(len(folders), len(SAMPLES), figsize=(10, 3.4 * len(folders)),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for row, folder in enumerate(folders):
        for col, name in enumerate(SAMPLES):
            image = read_image(str(Path(folder) / name)).permute(1, 2, 0).numpy()
            axes[row][col].imshow(image)
            axes[row][col].set_title(f"{Path(folder).name}: {name}", fontsize=10)
            axes[row][col].axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main(*sys.argv[1:])
