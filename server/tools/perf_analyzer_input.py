#!/usr/bin/env python3
"""perf_analyzer's --input-data file for a detr-serve model: each image as the
`image` input (BYTES [1]), one step per image.

perf_analyzer sends a {"b64": ...} value as the tensor's raw bytes, and a
BYTES tensor's raw form is each element's 4-byte little-endian length, then
its bytes (Triton's serialization); a bare base64 JPEG would be read as a
length prefix and refused. This writes that form.

  perf_analyzer_input.py IMAGE [IMAGE...] > image.json
  perf_analyzer -m ab -i grpc -u localhost:50051 --input-data image.json
"""
import base64
import json
import struct
import sys


def step(path):
    with open(path, "rb") as f:
        encoded = f.read()
    raw = struct.pack("<I", len(encoded)) + encoded
    return {"image": {"b64": base64.b64encode(raw).decode("ascii")}}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    json.dump({"data": [step(path) for path in sys.argv[1:]]}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
