// detr.v1's messages to and from the pipeline's protocol-neutral types.
#pragma once

#include "detr/v1/detector.pb.h"
#include "server/service/pipeline/model_runner.h"
#include "server/service/pipeline/request.h"

namespace detr::service {

/// The request, its image bytes moved out of `request`.
DetectInput ToDetectInput(v1::DetectRequest&& request);
void ToDetectResponse(DetectResult&& result, v1::DetectResponse* response);
/// What ListModels and GetModel say of a model.
v1::Model DescribeModel(const ModelRunner& runner);

}  // namespace detr::service
