#include "server/service/oip/inference_call.h"

#include <chrono>
#include <utility>

namespace detr::service::oip {

void Infer(RequestPipeline& pipeline, absl::StatusOr<InferRequest> parsed, const std::string& model,
           const std::string& request_id, std::shared_ptr<InferBinding> binding) {
  absl::StatusOr<DetectInput> input = parsed.ok() ? ToDetectInput(*parsed) : parsed.status();
  auto timeout = parsed.ok() ? Timeout(parsed->parameters) : parsed.status();
  if (!input.ok() || !timeout.ok()) {
    // Through the pipeline all the same, so that it is counted and logged like any bad request.
    DetectInput named;
    named.model = parsed.ok() ? parsed->model : model;
    named.request_id = parsed.ok() ? parsed->id : request_id;
    binding->StartCall(CallState::Deadline::max());
    pipeline.Refuse(std::move(named), input.ok() ? timeout.status() : input.status(),
                    [binding](absl::StatusOr<DetectResult> result) { binding->Answer(result.status(), {}); });
    return;
  }
  auto call = binding->StartCall(*timeout ? std::chrono::system_clock::now() + **timeout : CallState::Deadline::max());
  pipeline.Run(std::move(*input), std::move(call),
               [binding, request = std::move(*parsed)](absl::StatusOr<DetectResult> result) {
                 if (!result.ok()) return binding->Answer(result.status(), request);
                 binding->Answer(ToInferResponse(std::move(*result), request), request);
               });
}

}  // namespace detr::service::oip
