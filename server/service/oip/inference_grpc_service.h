// The Open Inference Protocol's gRPC service (inference.GRPCInferenceService)
// on the same port as detr.v1: ModelInfer goes through the same pipeline
// (validation, routing, batching, metrics) as detr.v1's Detect. Models and
// experiments are both "models" here; an experiment's ModelInfer is routed.
#pragma once

#include "inference/open_inference_grpc.grpc.pb.h"
#include "server/service/access/bearer_tokens.h"
#include "server/service/pipeline/request_pipeline.h"

namespace detr::service {

class InferenceGrpcService final : public inference::GRPCInferenceService::CallbackService {
 public:
  InferenceGrpcService(RequestPipeline& pipeline, const AccessControl& access) : pipeline_(pipeline), access_(access) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest*,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context,
                                            const inference::ModelStatisticsRequest* request,
                                            inference::ModelStatisticsResponse* response) override;

 private:
  RequestPipeline& pipeline_;
  const AccessControl& access_;
};

}  // namespace detr::service
