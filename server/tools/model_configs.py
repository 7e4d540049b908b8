#!/usr/bin/env python3
"""Model configurations for the training scripts, made in one place: a
shipped configuration (deploy/models/default-*.json) with the attention of
some sites replaced and, where a row says so, its dropout set.

    model_configs.py accuracy ROW OUT_JSON
        a row of docs/accuracy.md's results table (train_default_models.sh):
        softmax, softmax-control, identity-qk, optimization-all, or
        optimization-<site> (optimization at that site, softmax elsewhere)
    model_configs.py without-dropout MODEL OUT_JSON
        deploy/models/default-MODEL.json with dropout 0 (train_nonsquare_models.sh)

ablation_rows.py builds its rows with `configure` too.
"""
import json
import sys
from pathlib import Path

SITES = ["encoder.self", "decoder.self", "decoder.cross"]
# The paper's swap as the results table trained it (the normaliser and its
# power are the model's defaults: ReLU power, p = 5).
OPTIMIZATION = {"type": "optimization", "iterations": 5, "lambda": 0.05}


def shipped(model="softmax"):
    """The configuration of a shipped default model."""
    return json.loads(Path(f"deploy/models/default-{model}.json").read_text())


def configure(base, attention=None, dropout=None):
    """BASE with ATTENTION (site -> options) over its attention and, unless
    None, DROPOUT; BASE is left unchanged."""
    config = dict(base)
    if attention is not None:
        config["attention"] = dict(base.get("attention", {})) | attention
    if dropout is not None:
        config["dropout"] = dropout
    return config


def accuracy_row(row):
    """The configuration of one row of the results table."""
    swapped = {"identity-qk": dict.fromkeys(SITES, "softmax_identity_qk"),
               "optimization-all": dict.fromkeys(SITES, OPTIMIZATION)}
    swapped.update({f"optimization-{site.replace('.', '-')}": {site: OPTIMIZATION} for site in SITES})
    if row not in swapped and row not in ("softmax", "softmax-control"):
        # An unknown row must not quietly train softmax under another name.
        sys.exit(f"model_configs.py: no row {row!r}; rows: softmax, softmax-control, {', '.join(swapped)}")
    return configure(shipped("softmax"), dict.fromkeys(SITES, "softmax") | swapped.get(row, {}))


def write(config, path):
    Path(path).write_text(json.dumps(config, indent=2) + "\n")


def main(argv):
    if len(argv) == 4 and argv[1] == "accuracy":
        write(accuracy_row(argv[2]), argv[3])
    elif len(argv) == 4 and argv[1] == "without-dropout":
        write(configure(shipped(argv[2]), dropout=0.0), argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
