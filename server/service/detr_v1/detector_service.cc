#include "server/service/detr_v1/detector_service.h"

#include "server/service/access/grpc_access.h"
#include "server/service/detr_v1/detect_stream_reactor.h"
#include "server/service/detr_v1/detector_messages.h"
#include "server/service/transport/unary_call.h"
#include "server/service/pipeline/client_text.h"
#include "server/service/status_mapping.h"

namespace detr::service {
namespace {

// A stream refused before it starts (a missing or wrong token).
class RefusedStream final : public grpc::ServerBidiReactor<v1::DetectRequest, v1::DetectResponse> {
 public:
  explicit RefusedStream(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerUnaryReactor* DetectorService::Detect(grpc::CallbackServerContext* context,
                                                  const v1::DetectRequest* request, v1::DetectResponse* response) {
  auto* reactor = new UnaryCall(context);  // gRPC's contract: it deletes itself in OnDone
  if (auto access = CheckAccess(access_, context); !access.ok()) {
    reactor->Finish(ToGrpcStatus(access));
    return reactor;
  }
  pipeline_.Run(ToDetectInput(v1::DetectRequest(*request)), reactor->call(),
                [reactor, response](absl::StatusOr<DetectResult> result) {
                  if (result.ok()) ToDetectResponse(std::move(*result), response);
                  reactor->Finish(ToGrpcStatus(result.status()));
                });
  return reactor;
}

grpc::ServerBidiReactor<v1::DetectRequest, v1::DetectResponse>* DetectorService::DetectStream(
    grpc::CallbackServerContext* context) {
  // gRPC's contract: the reactors delete themselves when done.
  if (auto access = CheckAccess(access_, context); !access.ok()) return new RefusedStream(access);
  return new DetectStreamReactor(pipeline_, context);
}

grpc::ServerUnaryReactor* DetectorService::ListModels(grpc::CallbackServerContext* context,
                                                      const v1::ListModelsRequest*, v1::ListModelsResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (auto access = CheckAccess(access_, context); !access.ok()) {
    reactor->Finish(ToGrpcStatus(access));
    return reactor;
  }
  const auto models = pipeline_.models();
  const auto& config = models->config();
  for (const auto& entry : config.models) *response->add_models() = DescribeModel(*models->Find(entry.name));
  for (const auto& experiment : config.experiments) {
    auto* out = response->add_experiments();
    out->set_name(experiment.name);
    out->set_kind(ToString(experiment.kind));
    out->set_primary(experiment.primary);
    for (const auto& arm : experiment.arms) {
      auto* a = out->add_arms();
      a->set_model(arm.model);
      a->set_weight(arm.weight);
    }
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* DetectorService::GetModel(grpc::CallbackServerContext* context,
                                                    const v1::GetModelRequest* request, v1::Model* response) {
  auto* reactor = context->DefaultReactor();
  if (auto access = CheckAccess(access_, context); !access.ok()) {
    reactor->Finish(ToGrpcStatus(access));
    return reactor;
  }
  const auto models = pipeline_.models();
  if (const auto* runner = models->Find(request->name())) {
    *response = DescribeModel(*runner);
    reactor->Finish(grpc::Status::OK);
  } else {
    reactor->Finish(ToGrpcStatus(absl::NotFoundError("no model named '" + Echo(request->name()) + "'")));
  }
  return reactor;
}

}  // namespace detr::service
