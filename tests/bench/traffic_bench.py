#!/usr/bin/python3
"""Real traffic through detr-server: a mix of image shapes, first-request and warm latency, RSS.

Starts detr-server on CONFIG (127.0.0.1, ports of its own), waits for
readiness, then sends the mix below over the Open Inference Protocol's HTTP
binding (a JPEG body per request) for ROUNDS rounds at concurrency 1, then one
round at each further --concurrency. Reports, from the client's side:
  - the first request of each resized shape (the official 800/1333 rule) and
    the warm median of the same shape afterwards;
  - p50 / p99 over the rounds after the first (warm), and over all of them;
  - throughput at each concurrency;
  - the server's RSS at readiness, after the first round and at the end,
    and its exported memory parts (/metrics) at the end.
Appends one JSON record (figures, command, commit, date, machine) to --out.

The mix: 4:3 and 3:4 photographs of several sizes (each twice per round),
plus aspect ratios from 1:2 to 2:1 (once each), in a fixed shuffled order.

Usage: traffic_bench.py BUILD_DIR --config CONFIG --model NAME [--rounds N]
       [--concurrency 1 4] [--out results/traffic.jsonl] [--label TEXT]
"""
import argparse
import json
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server" / "tools"))
from records import provenance, write_record  # noqa: E402

PHOTOS = [(480, 640), (600, 800), (768, 1024), (1200, 1600), (640, 480), (800, 600), (1024, 768), (1600, 1200)]
RATIOS = [0.5, 0.56, 0.62, 0.67, 0.75, 0.8, 0.9, 1.0, 1.1, 1.25, 1.33, 1.5, 1.6, 1.78, 1.9, 2.0]  # width / height


def mix():
    """(height, width) of every request of one round."""
    shapes = PHOTOS * 2
    for ratio in RATIOS:  # long side 900
        shapes.append((900, round(900 * ratio)) if ratio < 1 else (round(900 / ratio), 900))
    random.Random(7).shuffle(shapes)
    return shapes


def official_size(h, w, shortest=800, longest=1333):
    """The official get_size_with_aspect_ratio (server/image/preprocess.cc)."""
    size = shortest
    short, long_ = min(h, w), max(h, w)
    if long_ / short * size > longest:
        size = round(longest * short / long_)
    if (w <= h and w == size) or (h <= w and h == size):
        return h, w
    return (int(size * h / w), size) if w < h else (size, int(size * w / h))


def jpeg(h, w):
    """A synthetic photograph-like JPEG: a gradient and a few filled shapes."""
    import torch
    from torchvision.io import encode_jpeg
    return encode_jpeg(photo(h, w).to(torch.uint8), quality=90).numpy().tobytes()


def photo(h, w):
    """The pixels of jpeg(h, w): a float (3, h, w) tensor in 0..255."""
    import torch
    g = torch.Generator().manual_seed(h * 7919 + w)
    y = torch.linspace(0, 1, h).view(h, 1)
    x = torch.linspace(0, 1, w).view(1, w)
    image = torch.stack([120 + 80 * x.expand(h, w), 90 + 100 * y.expand(h, w), 140 - 60 * (x * y)])
    for _ in range(4):
        y0, x0 = int(torch.randint(0, h * 3 // 4, (1,), generator=g)), int(torch.randint(0, w * 3 // 4, (1,), generator=g))
        image[:, y0:y0 + h // 5, x0:x0 + w // 5] = torch.randint(0, 255, (3, 1, 1), generator=g).float()
    return image.clamp(0, 255)


def rss_bytes(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def latency_figures(sizes, seconds, round_length):
    """p50/p99 after the first round, and per size its first request and warm median, in ms.

    sizes[i] is the (height, width) the model saw for request i, seconds[i] its time."""
    first, warm = {}, {}
    for (h, w), s in zip(sizes, seconds):
        key = f"{h}x{w}"
        if key in first:
            warm.setdefault(key, []).append(s * 1e3)
        else:
            first[key] = s * 1e3
    after_first = seconds[round_length:]
    return {"c1_p50_ms": statistics.median(after_first) * 1e3, "c1_p99_ms": percentile(after_first, 99) * 1e3,
            "c1_p99_all_ms": percentile(seconds, 99) * 1e3, "first_request_ms": first,
            "warm_median_ms": {k: statistics.median(v) for k, v in warm.items()}}


class Server:
    """detr-server on port 0 of 127.0.0.1 for each listener; the ports it bound come from its --ports-file."""

    def __init__(self, build, config, log, preexec_fn=None):
        self.ports = {}
        self.ports_file = Path(log.name).with_suffix(".ports")
        self.args = [f"{build}/bin/detr-server", "--config", config, "--listen", "127.0.0.1:0",
                     "--metrics-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                     "--ports-file", str(self.ports_file)]
        self.log = log
        self.preexec_fn = preexec_fn  # runs in the child before exec (e.g. joins a cgroup)

    def __enter__(self):
        start = time.monotonic()
        self.ports_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                        preexec_fn=self.preexec_fn)
        while time.monotonic() - start < 600:
            if self.process.poll() is not None:
                raise SystemExit(f"detr-server exited with {self.process.returncode}; see {self.log.name}")
            if not self.ports and self.ports_file.exists():
                self.ports = json.loads(self.ports_file.read_text())
            try:
                if self.ports and self.get("/v2/health/ready")[0] == 200:
                    self.ready_seconds = time.monotonic() - start
                    return self
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.5)
        raise SystemExit("detr-server was not ready within 600 s")

    def __exit__(self, *_):
        self.process.terminate()
        self.process.wait(timeout=60)

    def get(self, path, port="http"):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[port]}{path}", timeout=30) as r:
            return r.status, r.read()

    def infer(self, model, body):
        """(the request's seconds at the client, the forward pass's seconds at the server)"""
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports['http']}/v2/models/{model}/infer",
                                         data=body, headers={"Content-Type": "image/jpeg"})
        start = time.monotonic()
        with urllib.request.urlopen(request, timeout=600) as r:
            answer = json.loads(r.read())
            if r.status != 200:
                raise SystemExit(f"infer answered {r.status}")
        return time.monotonic() - start, answer["parameters"]["inference_seconds"]

    def memory_series(self):
        text = self.get("/metrics", "metrics")[1].decode()
        wanted = ("detr_model_weight_bytes", "detr_model_plan_bytes", "detr_model_plans", "detr_allocator_",
                  "detr_malloc_", "detr_memory_", "process_resident_memory_bytes")
        return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
                if line.startswith(wanted)}


def rss_growth(rss_by_count, first, last):
    """RSS growth between the round ends at or just past request FIRST and LAST (the issue's 100 and 1,000)."""
    at_first = next((n for n in sorted(rss_by_count) if n >= first), None)
    at_last = next((n for n in sorted(rss_by_count) if n >= last), None)
    if at_first is None or at_last is None:
        return {}
    return {"rss_growth": {"from_request": at_first, "to_request": at_last,
                           "ratio": rss_by_count[at_last] / rss_by_count[at_first]}}


def run_round(server, model, shapes, bodies, concurrency):
    """Each request's (client seconds, server forward-pass seconds), and the round's seconds."""
    latencies = [None] * len(shapes)
    next_index = [0]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= len(shapes):
                return
            latencies[i] = server.infer(model, bodies[shapes[i]])

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build")
    parser.add_argument("--config", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--out", default="")
    parser.add_argument("--label", default="")
    parser.add_argument("--beside", choices=["onnxruntime"],
                        help="run ONNX Runtime on the same resized shapes, one round after each of the server's "
                             "rounds at concurrency 1, so that drift reaches both alike; writes its record too")
    args = parser.parse_args()

    shapes = mix()
    bodies = {s: jpeg(*s) for s in set(shapes)}
    resized = {s: official_size(*s) for s in shapes}
    log_path = Path(args.build) / "bench" / f"traffic-{args.model}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    record = {"label": args.label, "config": args.config, "model": args.model,
              "distinct_inputs": len(set(resized.values())), "requests_per_round": len(shapes)}
    beside = Beside(args.build, [resized[s] for s in shapes]) if args.beside else None
    with open(log_path, "w") as log, Server(args.build, args.config, log) as server:
        pid = server.process.pid
        record["ready_seconds"] = round(server.ready_seconds, 1)
        record["rss_ready_mb"] = rss_bytes(pid) / 2**20
        all_c1, inference, rss_by_count = [], [], {}
        for r in range(args.rounds):
            answers, _ = run_round(server, args.model, shapes, bodies, 1)
            latencies = [client for client, _ in answers]
            if r > 0:
                inference += [server_side for _, server_side in answers]
            all_c1 += latencies
            if r == 0:
                record["rss_after_round_1_mb"] = rss_bytes(pid) / 2**20
            rss_by_count[(r + 1) * len(shapes)] = rss_bytes(pid) / 2**20
            print(f"round {r + 1}/{args.rounds}: p50 {statistics.median(latencies) * 1e3:.0f} ms, "
                  f"RSS {rss_bytes(pid) / 2**20:.0f} MB", flush=True)
            if beside:
                beside_p50 = beside.run_round()
                print(f"  {args.beside} round {r + 1}: p50 {beside_p50 * 1e3:.0f} ms", flush=True)
        record["rss_after_requests_mb"] = {str(n): mb for n, mb in rss_by_count.items()}
        record.update(rss_growth(rss_by_count, 100, 1000))
        record.update(latency_figures([resized[s] for s in shapes] * args.rounds, all_c1, len(shapes)))
        record["c1_inference_p50_ms"] = statistics.median(inference) * 1e3
        record["c1_inference_p99_ms"] = percentile(inference, 99) * 1e3
        record["throughput"] = {}
        for c in args.concurrency:
            _, seconds = run_round(server, args.model, shapes, bodies, c)
            record["throughput"][str(c)] = len(shapes) / seconds
            print(f"concurrency {c}: {len(shapes) / seconds:.2f} req/s", flush=True)
        record["rss_end_mb"] = rss_bytes(pid) / 2**20
        record["metrics_end"] = server.memory_series()
    record.update(provenance(sys.argv, args.config))
    if beside:
        record["interleaved_with"] = args.beside
    write_record(record, args.out)
    if beside:
        write_record(beside.record(args.build, [resized[s] for s in shapes], len(shapes), args.beside), args.out)


class Beside:
    """ONNX Runtime in a process of its own, running one round of the mix's resized shapes when asked."""

    def __init__(self, build, shapes):
        import traffic_reference
        command = traffic_reference.onnxruntime_command(build, traffic_reference.seeded_weights(build), shapes, 2)
        self.process = subprocess.Popen(command + ["--stdin-rounds"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        if not json.loads(self.process.stdout.readline()).get("ready"):
            raise SystemExit("ONNX Runtime did not start")
        self.seconds, self.rss = [], []

    def run_round(self):
        """Runs a round; its median seconds."""
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        result = json.loads(self.process.stdout.readline())
        self.seconds += result["seconds"]
        self.rss.append(result["rss"])
        return statistics.median(result["seconds"])

    def record(self, build, shapes, round_length, engine):
        self.process.stdin.close()
        self.process.wait(timeout=60)
        record = {"label": f"{engine} (interleaved)", "model": "detr-r50 (official architecture, seeded weights)",
                  "requests_per_round": round_length, "rounds": len(self.rss),
                  "rss_after_round_1_mb": self.rss[0] / 2**20, "rss_end_mb": self.rss[-1] / 2**20}
        record.update(latency_figures(shapes * len(self.rss), self.seconds, round_length))
        record.update(provenance(sys.argv))
        return record


if __name__ == "__main__":
    main()
