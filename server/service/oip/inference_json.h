// The Open Inference Protocol's JSON forms (KServe v2 REST) to and from the
// protocol-neutral types of oip/inference_protocol.h.
#pragma once

#include <map>
#include <string>

#include <absl/status/statusor.h>

#include "server/service/oip/inference_protocol.h"
#include "server/service/oip/model_description.h"

namespace detr::service::oip {

/// An inference request from a POST body: JSON, optionally followed by
/// binary tensors (Triton's binary data extension: `json_bytes` is the value
/// of Inference-Header-Content-Length, 0 when absent). INVALID_ARGUMENT says
/// what is wrong. `model` is the name in the URL.
absl::StatusOr<InferRequest> ParseInferRequest(std::string body, std::size_t json_bytes, const std::string& model);

/// A request whose body is the encoded image itself (Content-Type image/*),
/// with parameters from the URL's query string (numbers as numbers).
absl::StatusOr<InferRequest> ImageBodyRequest(std::string body, const std::string& query, const std::string& model);

/// An answer's body: the JSON, then the outputs `request` asked for as
/// binary data, in the order of the JSON's outputs (each with its
/// binary_data_size). `json_bytes` is 0 when the body is JSON alone, else
/// the JSON's size (the Inference-Header-Content-Length header).
struct InferResponseBody {
  std::string body;
  std::size_t json_bytes = 0;
};
InferResponseBody InferResponseJson(const InferResponse& response, const InferRequest& request);
std::string ModelMetadataJson(const ModelMetadata& metadata);
std::string ServerMetadataJson(const ServerMetadata& metadata);
/// {"name": ..., "ready": ...}
std::string ModelReadyJson(const std::string& name, bool ready);
/// Triton's model configuration as its HTTP API answers it (proto field
/// names, dims as numbers).
std::string ModelConfigJson(const ModelConfiguration& config);
/// {"model_stats": [...]}, as Triton's HTTP statistics answer.
std::string ModelStatisticsJson(const std::vector<NamedStatistics>& statistics);
/// {"error": message}
std::string ErrorJson(const std::string& message);

/// "%2F" -> "/", "+" stays; INVALID_ARGUMENT for a bad escape.
absl::StatusOr<std::string> PercentDecode(const std::string& text);

}  // namespace detr::service::oip
