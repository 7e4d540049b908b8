#!/usr/bin/env python3
"""A generic Open Inference Protocol gRPC client, written only from the
protocol's .proto: Debian's grpcio, with the message classes built at run time
from a descriptor set that protoc made of proto/inference/open_inference_grpc.proto
(no detr-serve code, no generated stubs). It sends one encoded image to
ModelInfer and prints the answer as JSON: model_name, id, parameters, and each
output decoded from raw_output_contents as Triton's clients decode it.

  oip_grpc_client.py DESCRIPTOR_SET TARGET MODEL IMAGE [TOKEN]
"""
import json
import struct
import sys

import grpc

from oip_messages import message_class_finder


def message_classes(descriptor_set_path):
    cls = message_class_finder(descriptor_set_path)
    return cls("inference.ModelInferRequest"), cls("inference.ModelInferResponse")


def decode(datatype, raw):
    if datatype == "FP32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw))
    if datatype == "INT32":
        return list(struct.unpack("<%di" % (len(raw) // 4), raw))
    if datatype == "BYTES":  # each element: a 4-byte little-endian length, then its bytes
        out, at = [], 0
        while at < len(raw):
            (n,) = struct.unpack_from("<I", raw, at)
            out.append(raw[at + 4:at + 4 + n].decode("utf-8", "replace"))
            at += 4 + n
        return out
    raise ValueError("unexpected datatype " + datatype)


def main():
    descriptor_set, target, model, image = sys.argv[1:5]
    token = sys.argv[5] if len(sys.argv) > 5 else ""
    Request, Response = message_classes(descriptor_set)
    request = Request(model_name=model, id="oip-grpc-e2e")
    tensor = request.inputs.add(name="image", datatype="BYTES", shape=[1])
    with open(image, "rb") as f:
        tensor.contents.bytes_contents.append(f.read())
    channel = grpc.insecure_channel(target)
    infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                request_serializer=Request.SerializeToString,
                                response_deserializer=Response.FromString)
    metadata = [("authorization", "Bearer " + token)] if token else None
    response = infer(request, timeout=60, metadata=metadata)
    parameters = {}
    for name, p in response.parameters.items():
        parameters[name] = getattr(p, p.WhichOneof("parameter_choice"))
    outputs = {o.name: {"datatype": o.datatype, "shape": list(o.shape),
                        "data": decode(o.datatype, response.raw_output_contents[i])}
               for i, o in enumerate(response.outputs)}
    print(json.dumps({"model_name": response.model_name, "id": response.id,
                      "parameters": parameters, "outputs": outputs}))


if __name__ == "__main__":
    main()
