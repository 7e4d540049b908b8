// The Open Inference Protocol's gRPC messages to and from the
// protocol-neutral types of inference_protocol.h (as detector_messages.h is
// for detr.v1): no gRPC service here, so the fuzz harness of ModelInfer
// requests links it alone.
#pragma once

#include <absl/status/statusor.h>

#include "inference/open_inference_grpc.pb.h"
#include "server/service/oip/inference_protocol.h"

namespace detr::service {

/// The request, with INVALID_ARGUMENT naming what is not the protocol (raw
/// contents that do not match the inputs, or sit beside contents; a
/// parameter without a value). Moves the tensors' bytes out of `request`.
absl::StatusOr<oip::InferRequest> FromProto(inference::ModelInferRequest& request);

/// The answer, its outputs in raw_output_contents as Triton sends them.
void ToProto(oip::InferResponse&& response, inference::ModelInferResponse* out);

}  // namespace detr::service
