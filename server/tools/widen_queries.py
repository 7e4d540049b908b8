#!/usr/bin/env python3
"""Gives a DETR checkpoint more object queries, so that a model trained on one
task can start a task with more objects per image (the large task of
docs/accuracy.md starts its 40-query softmax model from the 10-query default).

    widen_queries.py IN.safetensors OUT.safetensors --queries 40 [--seed 0] [--noise 0.1]

Query row i of OUT is row i mod n of IN (n = IN's queries), plus Gaussian
noise of `noise` times the rows' standard deviation for every row past the
first n: copies start where a trained query already detects, and the noise
lets Hungarian matching tell them apart. The first n rows and every other
tensor are copied unchanged; OUT is float32 (detr-train reads either).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

QUERY_KEY = "query_embed.weight"


def widen(tensors, queries, seed=0, noise=0.1):
    """Returns a copy of `tensors` whose query embedding has `queries` rows."""
    if QUERY_KEY not in tensors:
        raise ValueError(f"no '{QUERY_KEY}' in the checkpoint: is it a DETR model?")
    rows = tensors[QUERY_KEY].float()
    present = rows.shape[0]
    if queries < present:
        raise ValueError(f"the checkpoint has {present} queries; widening to {queries} would drop some")
    generator = torch.Generator().manual_seed(seed)
    index = torch.arange(queries) % present
    widened = rows[index]  # indexing copies
    jitter = torch.randn(queries - present, rows.shape[1], generator=generator) * noise * rows.std()
    widened[present:] += jitter
    result = {name: tensor.float() if tensor.is_floating_point() else tensor for name, tensor in tensors.items()}
    result[QUERY_KEY] = widened
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source")
    parser.add_argument("destination")
    parser.add_argument("--queries", type=int, required=True, help="object queries of the new model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the added rows' noise")
    parser.add_argument("--noise", type=float, default=0.1, help="noise of the added rows, in units of the rows' std")
    args = parser.parse_args()
    try:
        widened = widen(safetensors_io.load(args.source), args.queries, args.seed, args.noise)
    except ValueError as error:
        sys.exit(f"{args.source}: {error}")
    safetensors_io.save(args.destination, widened)
    print(f"{args.destination}: {widened[QUERY_KEY].shape[0]} queries", file=sys.stderr)


if __name__ == "__main__":
    main()
