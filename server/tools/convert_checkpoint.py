#!/usr/bin/python3
"""Converts an official DETR checkpoint (.pth) into safetensors for detr-serve.

Reads both torch serializations (the legacy pre-1.6 format the DETR authors
published, and the zip format), takes the state_dict under 'model' (or the
file itself if it is a plain state_dict) and writes it unchanged: the C++
model uses the official key names, so no key is renamed.

    convert_checkpoint.py detr-r50-e632da11.pth detr-r50.safetensors [--half]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def extract_state_dict(checkpoint, path):
    if isinstance(checkpoint, dict) and "model" in checkpoint and isinstance(checkpoint["model"], dict):
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, dict) or not all(torch.is_tensor(v) for v in checkpoint.values()):
        raise SystemExit(f"{path}: expected {{'model': state_dict}} or a state_dict of tensors")
    return checkpoint


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="official .pth checkpoint")
    parser.add_argument("output", help="safetensors file to write")
    parser.add_argument("--half", action="store_true",
                        help="store floating-point tensors as float16 (widened again at load)")
    args = parser.parse_args()

    try:
        checkpoint = torch.load(args.checkpoint, map_location="cpu")
    except Exception as error:  # torch raises many types for a bad file
        raise SystemExit(f"{args.checkpoint}: cannot read checkpoint: {error}")
    state = extract_state_dict(checkpoint, args.checkpoint)
    if args.half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    safetensors_io.save(args.output, state, metadata={"format": "pt", "source": os.path.basename(args.checkpoint)})
    count = sum(v.numel() for v in state.values())
    print(f"wrote {args.output}: {len(state)} tensors, {count} values")


if __name__ == "__main__":
    main()
