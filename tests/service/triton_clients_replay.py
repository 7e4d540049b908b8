#!/usr/bin/env python3
"""The calls Triton's tools make against a server, replayed in the byte form
their sources build them, and their answers checked the way those sources
parse them. Neither tool is packaged for Debian or npm, so this stands in for
them; it is written from their sources (read, not copied):

- perf_analyzer (triton-inference-server/perf_analyzer, src/model_parser.cc
  InitTriton, src/client_backend/triton/triton_client_backend.cc,
  src/data_loader.cc, src/inference_profiler.cc): server metadata (its
  extensions decide whether statistics are read), model metadata, model
  configuration (over gRPC printed to JSON with proto field names and
  default values, then ["config"]), statistics before and after, and an
  inference with the --input-data JSON of docs/serving.md, as raw bytes.
- Triton's HTTP clients (triton-inference-server/client,
  src/c++/library/http_client.cc and src/python/library/tritonclient/http):
  JSON followed by binary inputs (Inference-Header-Content-Length), outputs
  named with binary_data, or none named and "binary_data_output": true,
  answers read as InferResult reads them.

  triton_clients_replay.py DESCRIPTOR_SET GRPC_TARGET HTTP_HOST:PORT MODEL INPUT_DATA_JSON

Prints one JSON object: each path's decoded outputs ({name: {data}}) and the
statistics it saw; exits 1 with the first check that failed.
"""
import base64
import http.client
import json
import struct
import sys

import grpc
from google.protobuf import json_format

from oip_messages import message_class_finder


class Failed(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failed(what)


# --- gRPC, with message classes built at run time from the descriptor set ---

class GrpcClient:
    def __init__(self, descriptor_set, target):
        find = message_class_finder(descriptor_set)
        self.cls = lambda name: find("inference." + name)
        self.channel = grpc.insecure_channel(target)

    def call(self, method, request):
        response_class = self.cls(method + "Response")
        stub = self.channel.unary_unary("/inference.GRPCInferenceService/" + method,
                                        request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=response_class.FromString)
        return stub(request, timeout=60)

    def request(self, method, **fields):
        return self.cls(method + "Request")(**fields)


def as_perf_analyzer_json(message):
    """MessageToJsonString(preserve_proto_field_names, always_print_primitive_fields), parsed."""
    return json.loads(json_format.MessageToJson(message, preserving_proto_field_name=True,
                                                including_default_value_fields=True))


def as_int(value):
    """perf_analyzer's GetInt: proto JSON prints int64 as strings."""
    return int(value)


def parse_model(metadata, config):
    """What ModelParser::InitTriton reads; raises where it returns an error or would crash."""
    check(isinstance(metadata.get("name"), str), "metadata has no name")
    max_batch_size = as_int(config.get("max_batch_size", 0))
    if "model_transaction_policy" in config:
        check(isinstance(config["model_transaction_policy"]["decoupled"], bool), "decoupled is not a boolean")
    check(config.get("platform") != "ensemble", "an ensemble would need composing models")
    inputs = {}
    for tensor in metadata.get("inputs", []):
        dims = [as_int(d) for d in tensor["shape"]]
        inputs[tensor["name"]] = {"datatype": tensor["datatype"], "shape": dims[1:] if max_batch_size > 0 else dims}
    for tensor in config.get("input", []):
        check(tensor["name"] in inputs, "no metadata found for input tensor " + tensor["name"])
        check(isinstance(tensor.get("is_shape_tensor", False), bool), "is_shape_tensor is not a boolean")
        check(isinstance(tensor.get("optional", False), bool), "optional is not a boolean")
    outputs = {t["name"]: t["datatype"] for t in metadata.get("outputs", [])}
    for tensor in config.get("output", []):
        check(tensor["name"] in outputs, "no metadata found for output tensor " + tensor["name"])
    if "response_cache" in config:
        check(isinstance(config["response_cache"]["enable"], bool), "response_cache.enable is not a boolean")
    scheduler = "sequence" if "sequence_batching" in config else "dynamic" if "dynamic_batching" in config else "none"
    return {"max_batch_size": max_batch_size, "inputs": inputs, "outputs": outputs, "scheduler": scheduler}


def read_input_data(path, inputs):
    """DataLoader::ReadTensorData for the first step of the first stream: {"b64": ...} is the raw bytes."""
    with open(path) as f:
        step = json.load(f)["data"][0]
    raw = {}
    for name in inputs:
        check(name in step, "missing tensor " + name)
        tensor = step[name]
        content = tensor if "b64" in tensor else tensor["content"]
        check(isinstance(content, dict) and isinstance(content.get("b64"), str), "expected a b64 string")
        raw[name] = base64.b64decode(content["b64"])
        if "shape" in tensor:
            inputs[name]["shape"] = tensor["shape"]
    return raw


def statistics_by_id(model_stats):
    """ParseStatistics: (name, version) -> counts; then the model's highest version, as
    DetermineStatsModelVersion picks it when none was asked for."""
    return {(s["name"], s["version"]): s for s in model_stats}


def stats_of(stats, model):
    versions = [int(v) for (name, v) in stats if name == model]
    check(versions, "missing statistics for requested model")
    entry = stats[(model, str(max(versions)))]
    infer = entry["inference_stats"]
    return {"inference_count": as_int(entry["inference_count"]), "execution_count": as_int(entry["execution_count"]),
            "success": as_int(infer["success"]["count"]), "success_ns": as_int(infer["success"]["ns"]),
            "queue_ns": as_int(infer["queue"]["ns"]), "compute_infer_ns": as_int(infer["compute_infer"]["ns"])}


def decode(datatype, raw):
    if datatype == "FP32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw))
    if datatype == "INT32":
        return list(struct.unpack("<%di" % (len(raw) // 4), raw))
    out, at = [], 0  # BYTES: each element a 4-byte little-endian length, then its bytes
    while at < len(raw):
        (n,) = struct.unpack_from("<I", raw, at)
        out.append(raw[at + 4:at + 4 + n].decode("utf-8", "replace"))
        at += 4 + n
    return out


def wrapped(outputs):
    """{name: {"data": [...]}}, the form the tests compare with detr.v1's answers."""
    return {name: {"data": data} for name, data in outputs.items()}


def perf_analyzer_grpc(client, model, input_data):
    extensions = set(client.call("ServerMetadata", client.request("ServerMetadata")).extensions)
    metadata = as_perf_analyzer_json(client.call("ModelMetadata", client.request("ModelMetadata", name=model)))
    config = as_perf_analyzer_json(client.call("ModelConfig", client.request("ModelConfig", name=model)))["config"]
    parsed = parse_model(metadata, config)
    raw = read_input_data(input_data, parsed["inputs"])

    def statistics():
        response = client.call("ModelStatistics", client.request("ModelStatistics", name=model))
        return stats_of(statistics_by_id(as_perf_analyzer_json(response)["model_stats"]), model)

    before = statistics() if "statistics" in extensions else None
    request = client.request("ModelInfer", model_name=model)
    for name, tensor in parsed["inputs"].items():
        request.inputs.add(name=name, datatype=tensor["datatype"], shape=tensor["shape"])
        request.raw_input_contents.append(raw[name])
    for name in parsed["outputs"]:
        request.outputs.add(name=name)
    response = client.call("ModelInfer", request)
    outputs = {o.name: decode(o.datatype, response.raw_output_contents[i]) for i, o in enumerate(response.outputs)}
    after = statistics() if "statistics" in extensions else None
    return {"extensions": sorted(extensions), "scheduler": parsed["scheduler"],
            "max_batch_size": parsed["max_batch_size"], "outputs": wrapped(outputs),
            "served_by": response.parameters["model"].string_param,
            "statistics_before": before, "statistics_after": after}


# --- HTTP, with http.client (what urllib3 and libcurl put on the wire) ---

class HttpClient:
    def __init__(self, address):
        self.address = address

    def get(self, path):
        connection = http.client.HTTPConnection(self.address, timeout=60)
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        check(response.status == 200, "GET %s: %d %s" % (path, response.status, body[:200]))
        return json.loads(body)

    def infer(self, model, request_json, binary, headers):
        body = request_json.encode() + binary
        connection = http.client.HTTPConnection(self.address, timeout=60)
        connection.request("POST", "/v2/models/%s/infer" % model, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        check(response.status == 200, "infer: %d %s" % (response.status, data[:300]))
        return response.getheader("Inference-Header-Content-Length"), data


def infer_result(header_length, content):
    """tritonclient.http.InferResult: the JSON, then each binary output by its binary_data_size."""
    if header_length is None:
        result = json.loads(content)
        return result, {o["name"]: o["data"] for o in result["outputs"]}
    header_length = int(header_length)
    result = json.loads(content[:header_length])
    buffer, at, outputs = content[header_length:], 0, {}
    for output in result["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is None:
            outputs[output["name"]] = output["data"]
        else:
            outputs[output["name"]] = decode(output["datatype"], buffer[at:at + size])
            at += size
    check(at == len(buffer), "binary data left over after the outputs")
    return result, outputs


def perf_analyzer_http(client, model, input_data):
    extensions = set(client.get("/v2")["extensions"])
    metadata = client.get("/v2/models/" + model)
    config = client.get("/v2/models/%s/config" % model)
    parsed = parse_model(metadata, config)
    raw = read_input_data(input_data, parsed["inputs"])

    def statistics():
        return stats_of(statistics_by_id(client.get("/v2/models/%s/stats" % model)["model_stats"]), model)

    before = statistics() if "statistics" in extensions else None
    # Triton's C++ HTTP client (perf_analyzer's): binary inputs, every output
    # named with binary_data true, the JSON's size in a header, Expect off.
    request = {"inputs": [{"name": n, "datatype": t["datatype"], "shape": t["shape"],
                           "parameters": {"binary_data_size": len(raw[n])}} for n, t in parsed["inputs"].items()],
               "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in parsed["outputs"]]}
    text = json.dumps(request)
    header_length, content = client.infer(model, text, b"".join(raw[n] for n in parsed["inputs"]), {
        "Inference-Header-Content-Length": str(len(text)), "Expect": "",
        "Content-Type": "application/octet-stream"})
    check(header_length is not None, "binary outputs were asked for and the answer has no Inference-Header-Content-Length")
    result, outputs = infer_result(header_length, content)
    after = statistics() if "statistics" in extensions else None
    return {"extensions": sorted(extensions), "scheduler": parsed["scheduler"],
            "max_batch_size": parsed["max_batch_size"], "outputs": wrapped(outputs),
            "served_by": result["parameters"]["model"], "statistics_before": before, "statistics_after": after}


def tritonclient_http_infer(client, model, input_data, outputs=None):
    """tritonclient.http's InferenceServerClient.infer: InferInput with binary data; with no outputs,
    "binary_data_output": true; outputs given as InferRequestedOutput(name, binary_data)."""
    metadata = client.get("/v2/models/" + model)
    tensor = metadata["inputs"][0]
    raw = read_input_data(input_data, {tensor["name"]: {"shape": tensor["shape"]}})[tensor["name"]]
    request = {"inputs": [{"name": tensor["name"], "shape": tensor["shape"], "datatype": tensor["datatype"],
                           "parameters": {"binary_data_size": len(raw)}}]}
    if outputs:
        request["outputs"] = [{"name": n, "parameters": {"binary_data": b}} for n, b in outputs]
    else:
        request["parameters"] = {"binary_data_output": True}
    text = json.dumps(request)
    header_length, content = client.infer(model, text, raw, {"Inference-Header-Content-Length": str(len(text))})
    result, decoded = infer_result(header_length, content)
    binary = [o["name"] for o in result["outputs"] if "binary_data_size" in (o.get("parameters") or {})]
    return {"outputs": wrapped(decoded), "binary_outputs": binary, "served_by": result["parameters"]["model"]}


def main():
    descriptor_set, grpc_target, http_address, model, input_data = sys.argv[1:6]
    report = {}
    try:
        report["perf_analyzer_grpc"] = perf_analyzer_grpc(GrpcClient(descriptor_set, grpc_target), model, input_data)
        http_client = HttpClient(http_address)
        report["perf_analyzer_http"] = perf_analyzer_http(http_client, model, input_data)
        report["tritonclient_http_all_binary"] = tritonclient_http_infer(http_client, model, input_data)
        report["tritonclient_http_mixed"] = tritonclient_http_infer(
            http_client, model, input_data, [("boxes", True), ("scores", False), ("labels", True)])
    except (Failed, grpc.RpcError, KeyError, ValueError, OSError) as e:
        print(json.dumps(report))
        print("FAILED: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
