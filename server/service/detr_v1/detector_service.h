// The detr.v1.Detector gRPC service (callback API): checks the caller's
// bearer token, converts each call's messages and hands the request to the
// pipeline, which answers it.
#pragma once

#include "detr/v1/detector.grpc.pb.h"
#include "server/service/access/bearer_tokens.h"
#include "server/service/pipeline/request_pipeline.h"

namespace detr::service {

class DetectorService final : public v1::Detector::CallbackService {
 public:
  DetectorService(RequestPipeline& pipeline, const AccessControl& access) : pipeline_(pipeline), access_(access) {}

  grpc::ServerUnaryReactor* Detect(grpc::CallbackServerContext* context, const v1::DetectRequest* request,
                                   v1::DetectResponse* response) override;
  grpc::ServerBidiReactor<v1::DetectRequest, v1::DetectResponse>* DetectStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context, const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* context, const v1::GetModelRequest* request,
                                     v1::Model* response) override;

 private:
  RequestPipeline& pipeline_;
  const AccessControl& access_;
};

}  // namespace detr::service
