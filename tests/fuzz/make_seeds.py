#!/usr/bin/python3
"""Writes the fuzzers' seed corpora (tests/fuzz/corpus/<harness>/): small valid
inputs of every kind each harness takes, and a few broken ones. The files are
committed; this script says where they came from.

    make_seeds.py [CORPUS_DIR]   (default tests/fuzz/corpus)
"""
import io
import json
import os
import struct
import sys

from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(data)


def image_bytes(fmt, size=(12, 9), **options):
    image = Image.new("RGB", size, (200, 40, 90))
    for x in range(size[0] // 2):
        image.putpixel((x, x % size[1]), (10, 220, 30))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def images():
    seeds = {
        "png": image_bytes("PNG"),
        "jpeg_baseline": image_bytes("JPEG", quality=80),
        "jpeg_progressive": image_bytes("JPEG", quality=80, progressive=True),
        "jpeg_grey": _grey_jpeg(),
        "bmp": image_bytes("BMP"),
        "gif": image_bytes("GIF"),
        "webp": image_bytes("WEBP"),
        "tiff": image_bytes("TIFF"),
    }
    seeds["jpeg_truncated"] = seeds["jpeg_baseline"][: len(seeds["jpeg_baseline"]) // 2]
    png = bytearray(seeds["png"])
    png[16:24] = struct.pack(">II", 30000, 30000)  # a header that claims 30000 x 30000
    seeds["png_huge_header"] = bytes(png)
    seeds["garbage"] = bytes(range(256)) * 2
    return seeds


def _grey_jpeg():
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, format="JPEG")
    return buffer.getvalue()


def safetensors_file(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors():
    return {
        "f32": safetensors_file({"w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))}),
        "mixed": safetensors_file({"a": ("F16", [3], b"\x00\x3c" * 3), "b": ("I64", [1], struct.pack("<q", 7)),
                                   "c": ("BOOL", [2], b"\x01\x00")}, {"step": "3"}),
        "empty_tensor": safetensors_file({"e": ("F32", [0, 4], b"")}),
        "overlapping": struct.pack("<Q", 80) + json.dumps(
            {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
             "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}).encode().ljust(80) + b"\x00" * 8,
        "huge_length": struct.pack("<Q", 1 << 62) + b"{}",
    }


def model_configs():
    seeds = {}
    for name in ("default-softmax.json", "default-optimization.json"):
        with open(os.path.join(ROOT, "deploy", "models", name), "rb") as f:
            seeds[name.replace(".json", "")] = f.read()
    seeds["r50_cross_optimization"] = json.dumps(
        {"backbone": "resnet50", "dilation": True, "num_classes": 91,
         "attention": {"decoder.cross": {"type": "optimization", "iterations": 3, "lambda": 0.1, "top_k": 4,
                                         "random_tokens": 2, "normalizer": "abs_power", "power": 2.5}}}).encode()
    seeds["wrong_types"] = b'{"hidden_dim": "wide", "attention": {"encoder.self": 5}}'
    return seeds


def server_configs():
    with open(os.path.join(ROOT, "deploy", "detr-server.yaml"), "rb") as f:
        builtin = f.read()
    inline = b"""models:
  - {name: a, architecture: {backbone: resnet18, hidden_dim: 32, nheads: 4}, random_seed: 3,
     attention: {decoder.cross: optimization}, preprocessing: {canvas: [64, 96]},
     batching: {max_batch_size: 4, max_queue_delay_ms: 2.5, queue_capacity: 8, workers: 2}}
  - {name: b, architecture: {backbone: resnet18}}
experiments:
  - {name: s, kind: sticky, arms: [{model: a, weight: 0.3}, {model: b, weight: 0.7}]}
  - {name: sh, kind: shadow, primary: b, arms: [{model: a}, {model: b}]}
default_route: s
limits: {max_message_bytes: 1048576, max_pixels: 1000000, max_preprocessing: 4, max_preprocessing_bytes: 1000000}
connections: {keepalive_time_seconds: 30, max_connection_age_seconds: 0}
log_format: json
"""
    as_json = json.dumps({"models": [{"name": "j", "architecture": {"backbone": "resnet34"}}],
                          "log_format": "json"}).encode()
    return {"builtin": builtin, "inline": inline, "json": as_json, "broken": b"models: [{name: a, architecture: {"}


def varint(n):
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def field(number, wire_type, payload):
    key = varint((number << 3) | wire_type)
    if wire_type == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def detect_requests():
    png = image_bytes("PNG", size=(20, 14))
    encoded = field(1, 2, field(1, 2, png))  # DetectRequest.image.encoded
    raw = field(1, 2, field(2, 2, field(1, 2, bytes(4 * 3 * 3)) + field(2, 0, varint(4)) + field(3, 0, varint(3))))
    options = (field(2, 2, b"ab") + field(3, 2, b"camera-7") + field(4, 5, struct.pack("<f", 0.5)) +
               field(5, 0, varint(3)) + field(6, 2, varint(1) + varint(3)) + field(7, 2, b"req-1"))
    return {"encoded": encoded, "raw": raw, "with_options": encoded + options,
            "jpeg": field(1, 2, field(1, 2, image_bytes("JPEG", size=(16, 16)))), "empty": b""}


def oip_requests():
    """First byte: 0 JSON (+ 2-byte Inference-Header-Content-Length), 1 image body, 2 ModelInferRequest."""
    png = image_bytes("PNG", size=(20, 14))
    b64 = __import__("base64").b64encode(png).decode()
    plain = json.dumps({"id": "r", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                                "data": [{"b64": b64}]}],
                        "parameters": {"score_threshold": 0.5, "binary_data_output": True}}).encode()
    raw = bytes([1, 0, 0, 0, 7])
    header = json.dumps({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 1, 1, 3],
                                     "parameters": {"binary_data_size": 3}}],
                         "outputs": [{"name": "boxes", "parameters": {"binary_data": True}},
                                     {"name": "class_names"}]}).encode()
    binary = header + bytes([9, 8, 7])
    tensor = field(1, 2, b"image") + field(2, 2, b"BYTES") + field(3, 0, varint(1))
    grpc_request = field(1, 2, b"m") + field(5, 2, tensor) + field(7, 2, struct.pack("<I", len(png)) + png)
    return {"json": bytes([0, 0, 0]) + plain,
            "json_binary": bytes([0, len(header) & 0xFF, len(header) >> 8]) + binary,
            "image_body": bytes([1]) + b"score_threshold=0.3&max_detections=2&id=x%20y&classes=1,2\n" + png,
            "grpc_raw": bytes([2]) + grpc_request,
            "grpc_contents": bytes([2]) + field(1, 2, b"m") + field(5, 2, tensor + field(5, 2, field(8, 2, png))),
            "short": raw}


def main():
    corpus = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fuzz", "corpus")
    for harness, seeds in (("image", images()), ("safetensors", safetensors()), ("model_config", model_configs()),
                           ("server_config", server_configs()), ("detect_request", detect_requests()),
                           ("oip_request", oip_requests())):
        for name, data in seeds.items():
            write(os.path.join(corpus, harness, name), data)
        print(f"{harness}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
