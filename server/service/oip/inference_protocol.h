// The Open Inference Protocol (KServe v2) as both of its bindings carry it:
// an inference request's tensors and parameters, and its answer, in types
// of their own, converted here to and from the pipeline's DetectInput and
// DetectResult (what the protocol says of the models themselves is in
// model_description.h). inference_grpc_service.cc (gRPC) and
// oip/inference_http_endpoint.cc (HTTP/JSON) only translate their wire
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
  /// HTTP binding, Triton's binary data extension: which outputs are answered
  /// as binary data after the JSON (an output's binary_data parameter, else
  /// the request's binary_data_output).
  bool binary_outputs_by_default = false;
  std::map<std::string, bool> binary_output;
  bool BinaryOutput(const std::string& name) const;
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

/// BYTES elements in binary form, as Triton puts them in raw contents and
/// its HTTP binary data: each a 4-byte little-endian length, then its bytes.
/// INVALID_ARGUMENT naming `input` when they are cut short.
absl::StatusOr<std::vector<std::string>> SplitBytes(const std::string& raw, const std::string& input);
std::string JoinBytes(const std::vector<std::string>& elements);
/// An output's elements in binary form, as raw_output_contents and the HTTP
/// binary data extension carry them: little-endian FP32 and INT32 (the
/// server's own order: it builds for x86-64 and AArch64 Linux, both little
/// endian), BYTES as JoinBytes.
std::string RawBytes(const OutputTensor& tensor);

}  // namespace detr::service::oip
