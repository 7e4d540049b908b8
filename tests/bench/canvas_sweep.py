#!/usr/bin/python3
"""Which canvases to pad DETR-R50's images into: a measured sweep over the real-traffic mix.

Padding every image into one of a few canvases keeps the server's backbone
plans to a fixed few, built before readiness, at the cost of the padded pixels
each forward pass computes. This bench measures both sides
of that trade on the traffic bench's mix (traffic_bench.mix(), official
800/1333 resize):

1. One detr-server hosts DETR-R50 with every candidate canvas of a grid (short
   side 800, long side from 800 to 1344 in steps of 96 or so, both ways round),
   all planned at start. Requests whose resized size lands on each canvas are
   sent round-robin, so that the VM's drift reaches every canvas alike; the
   server's own forward-pass time per request is kept. This VM's speed drifts
   10-30% within a minute, more than padding changes, so a canvas's cost is
   the least-squares line of time against pixels over every canvas's requests
   (the medians per canvas are recorded beside it). The server's log gives
   the warm-up time per canvas; /metrics the plans' bytes (the reordered
   weights, shared by every plan with the same layouts: adding a canvas adds
   plans, not weights).
2. Every canvas set of the grid that holds every resized size (the 1344 canvas
   both ways round; the square and each further long side in or out, both ways
   round) is scored on the mix: the mean and median forward time over the
   mix's requests (each on the smallest canvas of the set that holds it), the
   padded share of its pixels, and its warm-up time at start.
3. The chosen set is the one with the fewest canvases whose mean is within
   --tolerance of the best set's mean: past that point more canvases only add
   warm-up at start, and split traffic that could share batches (only images
   on one canvas share a batch).

Appends one JSON record (per-canvas figures, every set's score, the choice,
command, commit, date, machine) to --out.

Usage: canvas_sweep.py BUILD_DIR [--long-sides 800 896 ...] [--runs 4] [--tolerance 0.01]
       [--out results/canvas_sweep.jsonl]
"""
import argparse
import itertools
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server" / "tools"))
from records import provenance, write_record  # noqa: E402
from traffic_bench import Server, jpeg, mix, official_size  # noqa: E402

SHORT_SIDE = 800
DEFAULT_LONG_SIDES = [800, 896, 992, 1088, 1184, 1280, 1344]


def grid(long_sides):
    """(height, width) of every candidate canvas: the square, and each longer side both ways round."""
    canvases = [(SHORT_SIDE, SHORT_SIDE)] if SHORT_SIDE in long_sides else []
    for side in long_sides:
        if side > SHORT_SIDE:
            canvases += [(SHORT_SIDE, side), (side, SHORT_SIDE)]
    return canvases


def smallest_holding(canvases, h, w):
    """The canvas the server pads a resized (h, w) into (image::PrepareOnCanvases), or None."""
    holding = [c for c in canvases if c[0] >= h and c[1] >= w]
    return min(holding, key=lambda c: c[0] * c[1]) if holding else None


def source_landing_on(canvas, canvases):
    """A source image size whose official resize lands on `canvas` among `canvases`."""
    h, w = canvas
    source = (600, round(w * 600 / SHORT_SIDE)) if w >= h else (round(h * 600 / SHORT_SIDE), 600)
    landed = smallest_holding(canvases, *official_size(*source))
    if landed != canvas:
        raise SystemExit(f"a {source} image lands on {landed}, not {canvas}: adjust the grid")
    return source


def write_config(path, canvases):
    model_config = Path(__file__).resolve().parent / "detr_r50.json"
    sides = ", ".join(f"[{h}, {w}]" for h, w in canvases)
    path.write_text(f"""intra_op_threads: 0
preprocess_threads: 2
models:
  - name: r50
    model_config: {model_config}
    preprocessing:
      shortest_edge: 800
      longest_edge: 1333
      canvases: [{sides}]
    batching: {{max_batch_size: 1, max_queue_delay_ms: 0, queue_capacity: 16}}
""")


def measure(build, canvases, runs):
    """Per canvas its forward-pass ms (server side); warm-up seconds per canvas; plans' bytes and count."""
    config = Path(build) / "bench" / "canvas-sweep.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    write_config(config, canvases)
    bodies = {c: jpeg(*source_landing_on(c, canvases)) for c in canvases}
    seconds = {c: [] for c in canvases}
    log_path = Path(build) / "bench" / "canvas-sweep.log"
    with open(log_path, "w") as log, Server(build, str(config), log) as server:
        series = server.memory_series()
        plans = series.get('detr_model_plans{model="r50"}', 0)
        plan_bytes = series.get('detr_model_plan_bytes{model="r50"}', 0)
        for c in canvases:  # first pass of each canvas: not timed
            server.infer("r50", bodies[c])
        for r in range(runs):
            for c in canvases:
                seconds[c].append(server.infer("r50", bodies[c])[1])
            print(f"run {r + 1}/{runs}: " + ", ".join(f"{h}x{w} {seconds[(h, w)][-1] * 1e3:.0f}"
                                                      for h, w in canvases), flush=True)
    warm_up = re.search(r"warmed up (\d+) input shape\(s\).* in ([\d.]+) s", log_path.read_text())
    warm_up_seconds = float(warm_up.group(2)) / int(warm_up.group(1)) if warm_up else 0
    return {c: [t * 1e3 for t in s] for c, s in seconds.items()}, warm_up_seconds, plan_bytes, int(plans)


def fit(samples):
    """Least-squares (fixed ms, ms per megapixel) of forward time against canvas pixels."""
    xs = [c[0] * c[1] / 1e6 for c, times in samples.items() for _ in times]
    ys = [t for times in samples.values() for t in times]
    slope, intercept = statistics.linear_regression(xs, ys)
    return intercept, slope


def candidate_sets(long_sides):
    """Every set of the grid that holds the official rule's largest sizes (the longest side, both ways round)."""
    longest = max(long_sides)
    optional = [s for s in long_sides if s != longest]
    for n in range(len(optional) + 1):
        for chosen in itertools.combinations(optional, n):
            yield grid(list(chosen) + [longest])


def score(canvases, cost, warm_up_seconds, shapes):
    """The mix on these canvases (cost(canvas): its forward ms): mean / median ms, padded share, warm-up."""
    times, pixels, padded = [], 0, 0
    for h, w in shapes:
        rh, rw = official_size(h, w)
        c = smallest_holding(canvases, rh, rw)
        times.append(cost(c))
        pixels += c[0] * c[1]
        padded += c[0] * c[1] - rh * rw
    return {"canvases": [list(c) for c in canvases], "count": len(canvases),
            "mean_ms": statistics.mean(times), "median_ms": statistics.median(times),
            "padded_share": padded / pixels, "warm_up_seconds": len(canvases) * warm_up_seconds}


def choose(scores, tolerance):
    """The fewest canvases within `tolerance` of the best mean; the lower mean among equals."""
    best = min(s["mean_ms"] for s in scores)
    good = [s for s in scores if s["mean_ms"] <= best * (1 + tolerance)]
    return min(good, key=lambda s: (s["count"], s["mean_ms"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build")
    parser.add_argument("--long-sides", type=int, nargs="+", default=DEFAULT_LONG_SIDES)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--current", default="tests/bench/traffic_r50.yaml",
                        help="a config whose canvases are scored beside the sweep (those of the shipped bench)")
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    canvases = grid(args.long_sides)
    samples, warm_up_seconds, plan_bytes, plans = measure(args.build, canvases, args.runs)
    fixed_ms, ms_per_megapixel = fit(samples)

    def cost(c):
        return fixed_ms + ms_per_megapixel * c[0] * c[1] / 1e6

    shapes = mix()
    scores = sorted((score(s, cost, warm_up_seconds, shapes) for s in candidate_sets(args.long_sides)),
                    key=lambda s: (s["count"], s["mean_ms"]))
    chosen = choose(scores, args.tolerance)
    record = {"model": "DETR-R50 (seeded weights), batch 1", "mix_requests": len(shapes), "runs": args.runs,
              "tolerance": args.tolerance, "plans_at_start": plans,
              "plan_mb_all_canvases": plan_bytes / 2**20, "warm_up_seconds_per_canvas": warm_up_seconds,
              "canvas_median_ms": {f"{h}x{w}": statistics.median(t) for (h, w), t in samples.items()},
              "canvas_max_over_min": {f"{h}x{w}": max(t) / min(t) for (h, w), t in samples.items()},
              "fit": {"fixed_ms": fixed_ms, "ms_per_megapixel": ms_per_megapixel},
              "sets": scores, "chosen": chosen}
    current = current_canvases(args.current)
    if current:
        record["current"] = score([tuple(c) for c in current], cost, warm_up_seconds, shapes)
    record.update(provenance(sys.argv))
    write_record(record, args.out)
    print(f"chosen: {chosen['canvases']} (mean {chosen['mean_ms']:.0f} ms, "
          f"{chosen['padded_share']:.1%} padded, {chosen['warm_up_seconds']:.1f} s of warm-up)")


def current_canvases(config):
    import yaml
    try:
        models = yaml.safe_load(Path(config).read_text())["models"]
        return models[0]["preprocessing"]["canvases"]
    except (OSError, KeyError, IndexError, TypeError):
        return None


if __name__ == "__main__":
    main()
