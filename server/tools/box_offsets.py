#!/usr/bin/env python3
"""How far a model's boxes land from the ground truth, per axis, in pixels.

AP says that boxes are off; this says which way. Each ground-truth box is
matched to the detection of its class whose centre is nearest (within
--max-distance px), and the mean and spread of the centre offset (dx, dy) and
the size error (dw, dh) are printed. A mean dw far from 0 on images of one
width, and of the other sign on another width, is a model that does not
follow the image's extent (docs/accuracy.md#non-square-images).
--columns PX adds a second table: the mean dx of the true boxes whose centre
lies in each PX-wide column of the image, which shows whether boxes are pulled
towards the middle (positive on the left, negative on the right).

  detr-client detect --model M --threshold 0.3 IMAGES... > M.jsonl
  server/tools/box_offsets.py [--columns 32] VAL.json M.jsonl [MORE.jsonl ...]
"""
import argparse
import json
import os
import statistics


def nearest_detection(truth, detections, max_distance):
    """(dx, dy, dw, dh) of the nearest detection of truth's class, or None."""
    x, y, w, h = truth["bbox"]
    cx, cy = x + w / 2, y + h / 2
    best = None
    for detection in detections:
        if detection["class_id"] != truth["category_id"]:
            continue
        x0, y0, x1, y1 = detection["box"]
        dx, dy = (x0 + x1) / 2 - cx, (y0 + y1) / 2 - cy
        distance = (dx * dx + dy * dy) ** 0.5
        if distance <= max_distance and (best is None or distance < best[0]):
            best = (distance, dx, dy, (x1 - x0) - w, (y1 - y0) - h)
    return None if best is None else best[1:]


def offsets(annotations, detection_lines, max_distance):
    """([(truth's centre x, (dx, dy, dw, dh)) of each matched truth], missed)."""
    image_ids = {image["file_name"]: image["id"] for image in annotations["images"]}
    truths = {}
    for truth in annotations["annotations"]:
        truths.setdefault(truth["image_id"], []).append(truth)
    matched, missed = [], 0
    for line in detection_lines:
        result = json.loads(line)
        image_id = image_ids[os.path.basename(result["file"])]
        for truth in truths.get(image_id, []):
            found = nearest_detection(truth, result["detections"], max_distance)
            if found is None:
                missed += 1
            else:
                x, _, w, _ = truth["bbox"]
                matched.append((x + w / 2, found))
    return matched, missed


def print_offsets(results):
    """The per-axis table: one row per (path, matched, missed)."""
    print("| detections | matched | missed | dx mean / sd | dy mean / sd | dw mean / sd | dh mean / sd |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for path, matched, missed in results:
        if not matched:
            print(f"| {path} | 0 | {missed} | | | | |")
            continue
        axes = zip(*(found for _, found in matched))
        cells = [f"{statistics.mean(axis):+.1f} / {statistics.pstdev(axis):.1f}" for axis in axes]
        print(f"| {path} | {len(matched)} | {missed} | " + " | ".join(cells) + " |")


def print_columns(results, width):
    """Mean dx (and count) by WIDTH-px column of the true centre."""
    by_path = []
    for path, matched, _ in results:
        dxs = {}
        for centre, found in matched:
            dxs.setdefault(int(centre // width), []).append(found[0])
        by_path.append((path, dxs))
    columns = sorted(set().union(*(dxs for _, dxs in by_path)))
    print()
    print("| detections | " + " | ".join(f"dx, x {c * width}-{(c + 1) * width}" for c in columns) + " |")
    print("| --- | " + " | ".join("---" for _ in columns) + " |")
    for path, dxs in by_path:
        cells = [f"{statistics.mean(dxs[c]):+.1f} ({len(dxs[c])})" if c in dxs else "" for c in columns]
        print(f"| {path} | " + " | ".join(cells) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("annotations", help="COCO annotations of the images detected")
    parser.add_argument("detections", nargs="+", help="`detr-client detect` output, one JSON line per image")
    parser.add_argument("--max-distance", type=float, default=20.0, help="px between centres to count as a match")
    parser.add_argument("--columns", type=int, metavar="PX", help="also print the mean dx by PX-wide column")
    args = parser.parse_args()
    with open(args.annotations) as f:
        annotations = json.load(f)
    results = []
    for path in args.detections:
        with open(path) as f:
            results.append((path, *offsets(annotations, f, args.max_distance)))
    print_offsets(results)
    if args.columns:
        print_columns(results, args.columns)


if __name__ == "__main__":
    main()
