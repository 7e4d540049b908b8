#include "server/service/oip/inference_grpc_service.h"

#include "server/service/access/grpc_access.h"
#include "server/service/oip/inference_call.h"
#include "server/service/oip/inference_grpc_messages.h"
#include "server/service/oip/inference_protocol.h"
#include "server/service/oip/model_description.h"
#include "server/service/transport/unary_call.h"
#include "server/service/pipeline/client_text.h"
#include "server/service/status_mapping.h"

namespace detr::service {
namespace {

void ToProto(const oip::ModelConfiguration& config, inference::ModelConfig* out) {
  out->set_name(config.name);
  out->set_platform(config.platform);
  out->set_backend(config.backend);
  out->set_max_batch_size(0);
  const auto data_type = [](const std::string& name) {
    inference::DataType type = inference::TYPE_INVALID;
    inference::DataType_Parse(name, &type);
    return type;
  };
  for (const auto& tensor : config.inputs) {
    auto* input = out->add_input();
    input->set_name(tensor.name);
    input->set_data_type(data_type(tensor.data_type));
    for (const auto d : tensor.dims) input->add_dims(d);
  }
  for (const auto& tensor : config.outputs) {
    auto* output = out->add_output();
    output->set_name(tensor.name);
    output->set_data_type(data_type(tensor.data_type));
    for (const auto d : tensor.dims) output->add_dims(d);
  }
  auto* group = out->add_instance_group();
  group->set_name(config.name);
  group->set_count(config.instances);
  group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
  if (config.dynamic_batching) {
    auto* batching = out->mutable_dynamic_batching();
    batching->add_preferred_batch_size(config.dynamic_batching->preferred_batch_size);
    batching->set_max_queue_delay_microseconds(
        static_cast<std::uint64_t>(config.dynamic_batching->max_queue_delay_microseconds));
  }
  for (const auto& [key, value] : config.parameters) (*out->mutable_parameters())[key].set_string_value(value);
  out->mutable_model_transaction_policy()->set_decoupled(false);
  out->mutable_response_cache()->set_enable(false);
}

void ToProto(const DurationTotal& total, inference::StatisticDuration* out) {
  out->set_count(total.count);
  out->set_ns(total.ns);
}

void ToProto(const oip::NamedStatistics& named, inference::ModelStatistics* out) {
  const auto& s = named.statistics;
  out->set_name(named.name);
  out->set_version("1");
  out->set_last_inference(s.last_inference_ms);
  out->set_inference_count(s.inference_count);
  out->set_execution_count(s.execution_count);
  auto* stats = out->mutable_inference_stats();
  ToProto(s.success, stats->mutable_success());
  ToProto(s.fail, stats->mutable_fail());
  ToProto(s.queue, stats->mutable_queue());
  ToProto(s.compute_input, stats->mutable_compute_input());
  ToProto(s.compute_infer, stats->mutable_compute_infer());
  ToProto(s.compute_output, stats->mutable_compute_output());
  for (const auto& [size, batch] : s.batches) {
    auto* b = out->add_batch_stats();
    b->set_batch_size(static_cast<std::uint64_t>(size));
    ToProto(batch.compute_infer, b->mutable_compute_infer());
    ToProto(batch.compute_output, b->mutable_compute_output());
  }
}

// Finishes at once: for the methods that do not go through the pipeline.
template <typename Fill>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const AccessControl* access, Fill fill) {
  auto* reactor = context->DefaultReactor();
  absl::Status status = access ? CheckAccess(*access, context) : absl::OkStatus();
  if (status.ok()) status = fill();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

// Liveness and readiness stay open without a token, as gRPC health does:
// probes and load balancers carry none.
grpc::ServerUnaryReactor* InferenceGrpcService::ServerLive(grpc::CallbackServerContext* context,
                                                           const inference::ServerLiveRequest*,
                                                           inference::ServerLiveResponse* response) {
  return Answer(context, nullptr, [&] {
    response->set_live(true);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* InferenceGrpcService::ServerReady(grpc::CallbackServerContext* context,
                                                            const inference::ServerReadyRequest*,
                                                            inference::ServerReadyResponse* response) {
  return Answer(context, nullptr, [&] {
    response->set_ready(!pipeline_.draining());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* InferenceGrpcService::ModelReady(grpc::CallbackServerContext* context,
                                                           const inference::ModelReadyRequest* request,
                                                           inference::ModelReadyResponse* response) {
  return Answer(context, nullptr, [&] {
    // Models load before their set serves: a known name is a loaded one.
    if (!pipeline_.models()->Knows(request->name())) {
      return absl::NotFoundError("no model or experiment named '" + Echo(request->name()) + "'");
    }
    response->set_ready(!pipeline_.draining());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* InferenceGrpcService::ServerMetadata(grpc::CallbackServerContext* context,
                                                               const inference::ServerMetadataRequest*,
                                                               inference::ServerMetadataResponse* response) {
  return Answer(context, &access_, [&] {
    const auto server = oip::DescribeServer();
    response->set_name(server.name);
    response->set_version(server.version);
    for (const auto& extension : server.extensions) response->add_extensions(extension);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* InferenceGrpcService::ModelMetadata(grpc::CallbackServerContext* context,
                                                              const inference::ModelMetadataRequest* request,
                                                              inference::ModelMetadataResponse* response) {
  return Answer(context, &access_, [&] {
    auto metadata = oip::DescribeModel(*pipeline_.models(), request->name());
    if (!metadata.ok()) return metadata.status();
    response->set_name(metadata->name);
    response->add_versions("1");
    response->set_platform(metadata->platform);
    const auto add = [](const oip::ModelMetadata::Tensor& tensor, auto* out) {
      out->set_name(tensor.name);
      out->set_datatype(tensor.datatype);
      for (const auto d : tensor.shape) out->add_shape(d);
    };
    for (const auto& tensor : metadata->inputs) add(tensor, response->add_inputs());
    for (const auto& tensor : metadata->outputs) add(tensor, response->add_outputs());
    for (const auto& [key, value] : metadata->properties) (*response->mutable_properties())[key] = value;
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* InferenceGrpcService::ModelConfig(grpc::CallbackServerContext* context,
                                                            const inference::ModelConfigRequest* request,
                                                            inference::ModelConfigResponse* response) {
  return Answer(context, &access_, [&] {
    auto config = oip::DescribeConfiguration(*pipeline_.models(), request->name(), request->version());
    if (!config.ok()) return config.status();
    ToProto(*config, response->mutable_config());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* InferenceGrpcService::ModelStatistics(grpc::CallbackServerContext* context,
                                                                const inference::ModelStatisticsRequest* request,
                                                                inference::ModelStatisticsResponse* response) {
  return Answer(context, &access_, [&] {
    auto statistics = oip::CollectStatistics(*pipeline_.models(), request->name(), request->version());
    if (!statistics.ok()) return statistics.status();
    for (const auto& named : *statistics) ToProto(named, response->add_model_stats());
    return absl::OkStatus();
  });
}

namespace {

// The gRPC side of an infer: a unary reactor whose call state carries the
// request's deadline, answered as a ModelInferResponse.
class GrpcInferCall final : public oip::InferBinding {
 public:
  GrpcInferCall(grpc::CallbackServerContext* context, inference::ModelInferResponse* response)
      : context_(context), response_(response) {}
  std::shared_ptr<const CallState> StartCall(CallState::Deadline deadline) override {
    reactor_ = new UnaryCall(context_, deadline);  // gRPC's contract: it deletes itself in OnDone
    context_ = nullptr;                            // what waits in the queues holds the reactor, not the context
    return reactor_->call();
  }
  void Answer(absl::StatusOr<oip::InferResponse> result, const oip::InferRequest&) override {
    if (result.ok()) service::ToProto(std::move(*result), response_);  // the messages file's, not this file's
    reactor_->Finish(ToGrpcStatus(result.status()));
  }
  grpc::ServerUnaryReactor* reactor() const { return reactor_; }

 private:
  grpc::CallbackServerContext* context_;
  inference::ModelInferResponse* response_;
  UnaryCall* reactor_ = nullptr;
};

}  // namespace

grpc::ServerUnaryReactor* InferenceGrpcService::ModelInfer(grpc::CallbackServerContext* context,
                                                           const inference::ModelInferRequest* request,
                                                           inference::ModelInferResponse* response) {
  if (auto access = CheckAccess(access_, context); !access.ok()) {
    auto* reactor = context->DefaultReactor();
    reactor->Finish(ToGrpcStatus(access));
    return reactor;
  }
  // A copy the pipeline may move from: gRPC owns *request.
  inference::ModelInferRequest copy(*request);
  const std::string model = copy.model_name(), id = copy.id();
  auto call = std::make_shared<GrpcInferCall>(context, response);
  oip::Infer(pipeline_, FromProto(copy), model, id, call);
  return call->reactor();
}

}  // namespace detr::service
