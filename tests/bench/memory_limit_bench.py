#!/usr/bin/python3
"""A Kubernetes deployment's memory limit, kept under real traffic (issue 35).

Runs detr-server on the configuration of a deploy/k8s base or overlay (its
ConfigMap's detr-server.yaml, image paths mapped to this checkout) under the
memory limit its manifests give the container, sends the traffic mix of
traffic_bench.py to the default route for --seconds at --concurrency, and
checks that no request failed and that memory stayed under the limit.

The limit is enforced as Kubernetes does, by a cgroup (v1 memory.limit_in_bytes
or v2 memory.max) that the server joins before exec and reads as its own,
where this machine lets the bench create one (root); else the server gets it
as limits.memory_limit_bytes and resident memory is sampled. Either way RSS is
sampled every 0.2 s. Appends one record to --out.

Usage: memory_limit_bench.py BUILD_DIR --deployment deploy/k8s/overlays/r50-ab
       [--seconds 180] [--concurrency 2] [--out results/memory_limit.jsonl]
"""
import argparse
import os
import re
import sys
import threading
import time
import urllib.error
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server" / "tools"))
from records import provenance, write_record  # noqa: E402
from traffic_bench import Server, jpeg, mix, rss_bytes  # noqa: E402

UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}


def quantity(text):
    """A Kubernetes memory quantity ("3Gi", "2500Mi", "1073741824") in bytes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]i?)?", str(text))
    if not m:
        raise SystemExit(f"cannot read the memory quantity {text!r}")
    return int(float(m.group(1)) * UNITS.get(m.group(2) or "", 1))


def deployment_resources(folder):
    """The server container's resources: the folder's resources.yaml patch, its deployment.yaml, else those of
    the bases its kustomization.yaml names."""
    for path in (folder / "resources.yaml", folder / "deployment.yaml"):
        if path.exists():
            spec = yaml.safe_load(path.read_text())["spec"]["template"]["spec"]
            return next(c for c in spec["containers"] if c["name"] == "detr-server")["resources"]
    kustomization = folder / "kustomization.yaml"
    bases = yaml.safe_load(kustomization.read_text()).get("resources", []) if kustomization.exists() else []
    for base in bases:
        if (folder / base).is_dir():
            return deployment_resources((folder / base).resolve())
    raise SystemExit(f"{folder}: no resources.yaml, deployment.yaml or base with one")


def local_config(folder, out_path):
    """The folder's detr-server.yaml with the image's model paths pointing into this checkout."""
    text = (folder / "detr-server.yaml").read_text()
    models = Path(__file__).resolve().parents[2] / "deploy" / "models"
    out_path.write_text(text.replace("/usr/share/detr/models", str(models)))
    return out_path


class CgroupLimit:
    """A memory cgroup of its own with `limit` bytes, where this machine allows one; None otherwise."""

    def __init__(self, limit):
        self.limit, self.path, self.version = limit, None, None
        name = f"detr-memory-limit-bench-{os.getpid()}"
        for version, root, limit_file in ((2, Path("/sys/fs/cgroup"), "memory.max"),
                                          (1, Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes")):
            if version == 2 and not (root / "cgroup.controllers").exists():
                continue
            if version == 1 and not (root / "memory.limit_in_bytes").exists():
                continue
            try:
                path = root / name
                path.mkdir()
                (path / limit_file).write_text(str(limit))
                if version == 1 and (path / "memory.memsw.limit_in_bytes").exists():
                    (path / "memory.memsw.limit_in_bytes").write_text(str(limit))  # no swap to hide in
                self.path, self.version = path, version
                return
            except OSError:
                try:
                    path.rmdir()
                except OSError:
                    pass

    def join(self):
        """Runs in the server's process before exec."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def figures(self):
        if self.version == 1:
            read = lambda f: int((self.path / f).read_text())
            oom = (self.path / "memory.oom_control").read_text()
            kills = re.search(r"oom_kill (\d+)", oom)
            return {"cgroup": "v1", "peak_usage_bytes": read("memory.max_usage_in_bytes"),
                    "limit_hits": read("memory.failcnt"), "oom_kills": int(kills.group(1)) if kills else None}
        events = dict(line.split() for line in (self.path / "memory.events").read_text().splitlines())
        peak = self.path / "memory.peak"
        return {"cgroup": "v2", "peak_usage_bytes": int(peak.read_text()) if peak.exists() else None,
                "limit_hits": int(events.get("max", 0)), "oom_kills": int(events.get("oom_kill", 0))}

    def remove(self):
        if self.path:
            for _ in range(50):
                try:
                    self.path.rmdir()
                    return
                except OSError:
                    time.sleep(0.1)


def drive(server, model, bodies, shapes, seconds, concurrency):
    """Sends the mix round after round until `seconds` pass; (answered, failures by message)."""
    answered, failures, lock = [0], {}, threading.Lock()
    deadline = time.monotonic() + seconds
    order = [shapes[i % len(shapes)] for i in range(len(shapes))]

    def client(offset):
        i = offset
        while time.monotonic() < deadline:
            shape = order[i % len(order)]
            i += concurrency
            try:
                server.infer(model, bodies[shape])
                with lock:
                    answered[0] += 1
            except (urllib.error.URLError, ConnectionError, SystemExit, KeyError) as e:
                with lock:
                    key = str(e)[:200]
                    failures[key] = failures.get(key, 0) + 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answered[0], failures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build")
    parser.add_argument("--deployment", required=True, help="a deploy/k8s base or overlay folder")
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--out", default="")
    parser.add_argument("--no-cgroup", action="store_true", help="sample RSS only, even where a cgroup is possible")
    args = parser.parse_args()

    folder = Path(args.deployment)
    resources = deployment_resources(folder)
    limit = quantity(resources["limits"]["memory"])
    bench_dir = Path(args.build) / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    config = local_config(folder, bench_dir / f"memory-limit-{folder.name}.yaml")
    default_route = yaml.safe_load(config.read_text()).get("default_route")
    cgroup = None if args.no_cgroup else CgroupLimit(limit)
    if cgroup is None or cgroup.path is None:
        # No cgroup here: the server budgets against the same limit and RSS is sampled.
        text = config.read_text() + f"\nlimits: {{memory_limit_bytes: {limit}}}\n"
        config.write_text(text)
        cgroup = None
    shapes = mix()
    bodies = {s: jpeg(*s) for s in set(shapes)}
    record = {"deployment": str(folder), "route": default_route, "limit_bytes": limit,
              "request_bytes": quantity(resources["requests"]["memory"]),
              "enforced_by": f"cgroup v{cgroup.version}" if cgroup else "RSS sampling (no cgroup allowed here)",
              "seconds": args.seconds, "concurrency": args.concurrency}
    print(f"== {folder}: limit {limit / 2**20:.0f} MiB, {record['enforced_by']}", flush=True)
    samples, stop = [], threading.Event()
    log_path = bench_dir / f"memory-limit-{folder.name}.log"
    try:
        with open(log_path, "w") as log, \
                Server(args.build, str(config), log, cgroup.join if cgroup else None) as server:
            pid = server.process.pid
            record["ready_seconds"] = round(server.ready_seconds, 1)
            record["rss_ready_bytes"] = rss_bytes(pid)

            def sample():
                while not stop.wait(0.2):
                    samples.append(rss_bytes(pid))
            sampler = threading.Thread(target=sample)
            sampler.start()
            answered, failures = drive(server, default_route, bodies, shapes, args.seconds, args.concurrency)
            stop.set()
            sampler.join()
            record["answered"], record["failures"] = answered, failures
            record["server_alive"] = server.process.poll() is None
            record["metrics_end"] = server.memory_series() if record["server_alive"] else {}
    finally:
        stop.set()
        if cgroup:
            record.update(cgroup.figures())
            cgroup.remove()
    record["rss_peak_bytes"] = max(samples, default=0)
    record["rss_end_bytes"] = samples[-1] if samples else 0
    budget = [line for line in log_path.read_text().splitlines() if "memory budget:" in line]
    record["budget_line"] = budget[-1][-600:] if budget else ""
    record.update(provenance(sys.argv, config))
    record["passed"] = (not record["failures"] and record["answered"] > 0 and record["server_alive"]
                        and record["rss_peak_bytes"] < limit and not record.get("oom_kills"))
    write_record(record, args.out)
    print(f"answered {answered}, failed {sum(failures.values())}, RSS peak {record['rss_peak_bytes'] / 2**20:.0f} "
          f"MiB of {limit / 2**20:.0f}: {'PASSED' if record['passed'] else 'FAILED'}", flush=True)
    sys.exit(0 if record["passed"] else 1)


if __name__ == "__main__":
    main()
