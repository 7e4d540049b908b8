#!/usr/bin/python3
"""The uniform average of a run's checkpoints (stochastic weight averaging, Izmailov et al. 2018).

Checkpoints of one run at a low, steady learning rate lie around one basin; their mean sits
nearer its centre than any one of them, and usually generalises better. Every floating-point
tensor is averaged in float32; anything else is taken from the last checkpoint. --half stores
the result as float16, as `detr-train --half` stores a model.

Usage: average_checkpoints.py OUT.safetensors CHECKPOINT.safetensors... [--half]
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import safetensors_io  # noqa: E402


def average(paths):
    states = [safetensors_io.load(p) for p in paths]
    names = set(states[0])
    for path, state in zip(paths, states):
        if set(state) != names:
            raise SystemExit(f"{path}: its tensors differ from {paths[0]}'s (another model?)")
    mean = {}
    for name in names:
        if states[-1][name].is_floating_point():
            mean[name] = torch.stack([s[name].float() for s in states]).mean(0)
        else:
            mean[name] = states[-1][name]
    return mean


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--half", action="store_true")
    args = parser.parse_args()
    mean = average(args.checkpoints)
    if args.half:
        mean = {k: v.half() if v.is_floating_point() else v for k, v in mean.items()}
    safetensors_io.save(args.out, mean, {"averaged_from": ", ".join(Path(p).name for p in args.checkpoints)})
    print(f"{args.out}: the mean of {len(args.checkpoints)} checkpoints")


if __name__ == "__main__":
    main()
