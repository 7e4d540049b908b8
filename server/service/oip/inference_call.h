// The Open Inference Protocol's infer, once for both of its bindings (gRPC
// and HTTP/JSON): a parsed request, or the error its parsing gave, becomes a
// pipeline run under the request's timeout, or a refusal that keeps the model
// and the request id for the log and the metrics; the answer comes back as an
// InferResponse. A binding keeps only what its transport owns: how a call and
// its deadline are tracked, and how the answer is encoded.
#pragma once

#include <memory>
#include <string>

#include <absl/status/statusor.h>

#include "server/service/oip/inference_protocol.h"
#include "server/service/pipeline/call_state.h"
#include "server/service/pipeline/request_pipeline.h"

namespace detr::service::oip {

class InferBinding {
 public:
  virtual ~InferBinding() = default;
  /// The call the request runs under, ending at `deadline` at the latest (its
  /// timeout parameter; Deadline::max() when it has none or was refused).
  /// Called once, before Answer.
  virtual std::shared_ptr<const CallState> StartCall(CallState::Deadline deadline) = 0;
  /// The response, or the error; `request` is what was asked (empty when it
  /// could not be parsed).
  virtual void Answer(absl::StatusOr<InferResponse> response, const InferRequest& request) = 0;
};

/// Runs `parsed` through `pipeline`, or refuses it. `model` and `request_id`
/// name a request that could not be parsed (from the URL or the message).
void Infer(RequestPipeline& pipeline, absl::StatusOr<InferRequest> parsed, const std::string& model,
           const std::string& request_id, std::shared_ptr<InferBinding> binding);

}  // namespace detr::service::oip
