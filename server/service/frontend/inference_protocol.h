// The Open Inference Protocol (KServe v2) as both of its bindings carry it:
// an inference request's tensors and parameters, and its answer, in types
// of their own, converted here to and from the pipeline's DetectInput and
// DetectResult. inference_grpc_service.cc (gRPC) and
// http/inference_http_endpoint.cc (HTTP/JSON) only translate their wire
// form to these, so both front ends validate, route and answer alike.
//
// A detector in this protocol:
//   input  one tensor: BYTES [1] (an encoded JPEG, PNG, BMP or WebP), or
//          UINT8 [H, W, 3] (raw RGB); a leading batch dimension of 1 is
//          accepted on either ([1, 1], [1, H, W, 3])
//   params score_threshold (double), max_detections (int64), routing_key
//          (string), classes (string: class ids, comma-separated), timeout
//          (int64, microseconds, as Triton's); the request's id is echoed
//   output boxes FP32 [N, 4] (x0, y0, x1, y1, pixels of the original image),
//          scores FP32 [N], labels INT32 [N] (class ids), class_names BYTES [N]
//   params model (the model that served it), experiment, batch_size,
//          queue/preprocess/inference/postprocess_seconds,
//          inference_memory_bytes, image_width, image_height, and the
//          attention of each site (attention_encoder_self, ...)
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <absl/status/statusor.h>

#include "server/service/pipeline/model_set.h"
#include "server/service/pipeline/request.h"

namespace detr::service::oip {

using Parameter = std::variant<bool, std::int64_t, double, std::string>;
using Parameters = std::map<std::string, Parameter>;

struct InputTensor {
  std::string name;
  std::string datatype;  ///< "BYTES", "UINT8", ...
  std::vector<std::int64_t> shape;
  std::vector<std::string> elements;  ///< BYTES: one string per element
  std::string data;                   ///< fixed-size types: the row-major bytes
};

struct InferRequest {
  std::string model;  ///< a model or experiment
  std::string id;
  Parameters parameters;
  std::vector<InputTensor> inputs;
  std::vector<std::string> outputs;  ///< the outputs asked for; empty: all
};

struct OutputTensor {
  std::string name;
  std::string datatype;  ///< "FP32", "INT32" or "BYTES"
  std::vector<std::int64_t> shape;
  std::vector<float> fp32;
  std::vector<std::int32_t> int32;
  std::vector<std::string> bytes;
};

struct InferResponse {
  std::string model;  ///< as the request named it (an experiment stays its name)
  std::string id;
  Parameters parameters;
  std::vector<OutputTensor> outputs;
};

/// The pipeline's request, with INVALID_ARGUMENT naming what is wrong (an
/// unknown output, a tensor of the wrong type or shape, a bad parameter).
/// Moves the image's bytes out of `request`.
absl::StatusOr<DetectInput> ToDetectInput(InferRequest& request);
/// The "timeout" parameter, if the request has one (INVALID_ARGUMENT if it
/// is not a positive integer).
absl::StatusOr<std::optional<std::chrono::microseconds>> Timeout(const Parameters& parameters);
/// The answer, with the outputs `request` asked for.
InferResponse ToInferResponse(DetectResult&& result, const InferRequest& request);

/// What ModelMetadata says of a model or experiment (NOT_FOUND if unknown).
struct ModelMetadata {
  std::string name;
  std::string platform;
  struct Tensor {
    std::string name, datatype;
    std::vector<std::int64_t> shape;
  };
  std::vector<Tensor> inputs, outputs;
  std::map<std::string, std::string> properties;
};
absl::StatusOr<ModelMetadata> DescribeModel(const ModelSet& models, const std::string& name);

/// BYTES elements in binary form, as Triton puts them in raw contents and
/// its HTTP binary data: each a 4-byte little-endian length, then its bytes.
/// INVALID_ARGUMENT naming `input` when they are cut short.
absl::StatusOr<std::vector<std::string>> SplitBytes(const std::string& raw, const std::string& input);
std::string JoinBytes(const std::vector<std::string>& elements);

/// "detr-serve", its version, and the protocol extensions it speaks.
struct ServerMetadata {
  std::string name, version;
  std::vector<std::string> extensions;
};
ServerMetadata DescribeServer();

}  // namespace detr::service::oip
