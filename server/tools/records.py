"""Where a result came from: the provenance every record in results/ carries, and how it is written.

Benchmarks (tests/bench/), training and accuracy tools (server/tools/) all append JSON Lines
records through write_record(), each with provenance(): the date, the commit, the machine and the
exact command, so a figure in docs/ can be traced to the run that produced it.
"""
import datetime
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

# The instruction sets that decide which kernels run (oneDNN's and the project's own).
ISA_FLAGS = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"]


def machine():
    """The CPU model, cores and instruction sets, and the caps in force (ONEDNN_MAX_CPU_ISA, DETR_KERNEL_MAX_ISA)."""
    info = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", info).group(1)
    flags = set(re.search(r"flags\s*:\s*(.*)", info).group(1).split())
    return {"cpu": model, "cores": os.cpu_count(), "isa": [f for f in ISA_FLAGS if f in flags],
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
            "kernel_max_isa": os.environ.get("DETR_KERNEL_MAX_ISA", "")}


def _git(*args):
    # A machine without git (a fresh one, a `git archive` copy) records no commit, and still measures.
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        return ""


def file_hash(path):
    """The first 16 hex digits of a file's sha256: how records name a model or configuration file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def provenance(argv, config=None):
    """Where a record came from: date, commit (and whether the tree had changes), machine, command.

    `config`, when given, adds the hash of the server configuration the run served."""
    record = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": _git("rev-parse", "--short", "HEAD"),
              # Changes to what runs, not to the docs and records a run is for.
              "tree_changed": bool(_git("status", "--porcelain", "--", ".", ":!docs", ":!results")),
              "machine": machine(), "command": " ".join([Path(argv[0]).as_posix()] + argv[1:])}
    if config:
        record["config_sha256"] = file_hash(config)
    return record


def write_record(record, out):
    """Prints the record and appends it to `out` (JSON Lines), if given."""
    print(json.dumps(record, indent=1))
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")
