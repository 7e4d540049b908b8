// The Open Inference Protocol's JSON forms (KServe v2 REST) to and from the
// protocol-neutral types of frontend/inference_protocol.h.
#pragma once

#include <map>
#include <string>

#include <absl/status/statusor.h>

#include "server/service/frontend/inference_protocol.h"

namespace detr::service::oip {

/// An inference request from a POST body: JSON, optionally followed by
/// binary tensors (Triton's binary data extension: `json_bytes` is the value
/// of Inference-Header-Content-Length, 0 when absent). INVALID_ARGUMENT says
/// what is wrong. `model` is the name in the URL.
absl::StatusOr<InferRequest> ParseInferRequest(std::string body, std::size_t json_bytes, const std::string& model);

/// A request whose body is the encoded image itself (Content-Type image/*),
/// with parameters from the URL's query string (numbers as numbers).
absl::StatusOr<InferRequest> ImageBodyRequest(std::string body, const std::string& query, const std::string& model);

std::string InferResponseJson(const InferResponse& response);
std::string ModelMetadataJson(const ModelMetadata& metadata);
std::string ServerMetadataJson(const ServerMetadata& metadata);
/// {"error": message}
std::string ErrorJson(const std::string& message);

/// "%2F" -> "/", "+" stays; INVALID_ARGUMENT for a bad escape.
absl::StatusOr<std::string> PercentDecode(const std::string& text);

}  // namespace detr::service::oip
