#include "server/service/frontend/inference_grpc_service.h"

#include <limits>

#include "server/service/frontend/detector_service.h"
#include "server/service/frontend/inference_protocol.h"
#include "server/service/frontend/unary_call.h"
#include "server/service/pipeline/client_text.h"
#include "server/service/status_mapping.h"

namespace detr::service {
namespace {

using inference::InferParameter;

absl::StatusOr<oip::Parameters> FromProto(const google::protobuf::Map<std::string, InferParameter>& parameters) {
  oip::Parameters out;
  for (const auto& [name, value] : parameters) {
    switch (value.parameter_choice_case()) {
      case InferParameter::kBoolParam: out[name] = value.bool_param(); break;
      case InferParameter::kInt64Param: out[name] = value.int64_param(); break;
      case InferParameter::kStringParam: out[name] = value.string_param(); break;
      case InferParameter::kDoubleParam: out[name] = value.double_param(); break;
      case InferParameter::kUint64Param:
        if (value.uint64_param() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          return absl::InvalidArgumentError("parameter '" + Echo(name) + "' is out of range");
        }
        out[name] = static_cast<std::int64_t>(value.uint64_param());
        break;
      case InferParameter::PARAMETER_CHOICE_NOT_SET:
        return absl::InvalidArgumentError("parameter '" + Echo(name) + "' has no value");
    }
  }
  return out;
}

void ToProto(const oip::Parameters& parameters, google::protobuf::Map<std::string, InferParameter>* out) {
  for (const auto& [name, value] : parameters) {
    auto& parameter = (*out)[name];
    if (const auto* b = std::get_if<bool>(&value)) parameter.set_bool_param(*b);
    if (const auto* i = std::get_if<std::int64_t>(&value)) parameter.set_int64_param(*i);
    if (const auto* d = std::get_if<double>(&value)) parameter.set_double_param(*d);
    if (const auto* s = std::get_if<std::string>(&value)) parameter.set_string_param(*s);
  }
}

absl::StatusOr<oip::InputTensor> FromProto(inference::ModelInferRequest::InferInputTensor& tensor, std::string* raw) {
  oip::InputTensor out;
  out.name = tensor.name();
  out.datatype = tensor.datatype();
  out.shape.assign(tensor.shape().begin(), tensor.shape().end());
  if (raw) {
    if (out.datatype != "BYTES") {
      out.data = std::move(*raw);
      return out;
    }
    auto elements = oip::SplitBytes(*raw, out.name);
    if (!elements.ok()) return elements.status();
    out.elements = std::move(*elements);
    return out;
  }
  auto* contents = tensor.mutable_contents();
  if (out.datatype == "BYTES") {
    for (auto& element : *contents->mutable_bytes_contents()) out.elements.push_back(std::move(element));
  } else if (out.datatype == "UINT8") {
    out.data.reserve(contents->uint_contents_size());
    for (const auto value : contents->uint_contents()) {
      if (value > 255) return absl::InvalidArgumentError("input '" + Echo(out.name) + "': a UINT8 value over 255");
      out.data.push_back(static_cast<char>(value));
    }
  }
  return out;
}

absl::StatusOr<oip::InferRequest> FromProto(inference::ModelInferRequest& request) {
  oip::InferRequest out;
  out.model = request.model_name();
  out.id = request.id();
  auto parameters = FromProto(request.parameters());
  if (!parameters.ok()) return parameters.status();
  out.parameters = std::move(*parameters);
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != request.inputs_size()) {
    return absl::InvalidArgumentError("raw_input_contents has " + std::to_string(request.raw_input_contents_size()) +
                                      " entries for " + std::to_string(request.inputs_size()) + " inputs");
  }
  for (int i = 0; i < request.inputs_size(); ++i) {
    // The protocol: raw_input_contents is used for every input or for none.
    if (raw && request.inputs(i).has_contents()) {
      return absl::InvalidArgumentError("input '" + Echo(request.inputs(i).name()) +
                                        "' has contents while the request has raw_input_contents; use one or the "
                                        "other");
    }
    auto tensor = FromProto(*request.mutable_inputs(i), raw ? request.mutable_raw_input_contents(i) : nullptr);
    if (!tensor.ok()) return tensor.status();
    out.inputs.push_back(std::move(*tensor));
  }
  for (const auto& output : request.outputs()) out.outputs.push_back(output.name());
  return out;
}

// Outputs as raw_output_contents, as Triton answers: what its clients read.
void ToProto(oip::InferResponse&& response, inference::ModelInferResponse* out) {
  out->set_model_name(std::move(response.model));
  out->set_model_version("1");
  out->set_id(std::move(response.id));
  ToProto(response.parameters, out->mutable_parameters());
  for (auto& tensor : response.outputs) {
    auto* o = out->add_outputs();
    o->set_name(tensor.name);
    o->set_datatype(tensor.datatype);
    for (const auto d : tensor.shape) o->add_shape(d);
    *out->add_raw_output_contents() = oip::RawBytes(tensor);
  }
}

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
  auto parsed = FromProto(copy);
  absl::StatusOr<DetectInput> input = parsed.ok() ? oip::ToDetectInput(*parsed) : parsed.status();
  auto timeout = parsed.ok() ? oip::Timeout(parsed->parameters) : parsed.status();
  if (!input.ok() || !timeout.ok()) {
    // Through the pipeline all the same, so that it is counted like any bad request.
    auto* reactor = new UnaryCall(context);
    DetectInput named;
    named.model = copy.model_name();
    named.request_id = copy.id();
    pipeline_.Refuse(
        std::move(named), input.ok() ? timeout.status() : input.status(),
        [reactor](absl::StatusOr<DetectResult> result) { reactor->Finish(ToGrpcStatus(result.status())); });
    return reactor;
  }
  auto* reactor = *timeout ? new UnaryCall(context, std::chrono::system_clock::now() + **timeout)
                           : new UnaryCall(context);  // gRPC's contract: it deletes itself in OnDone
  pipeline_.Run(std::move(*input), reactor->call(),
                [reactor, response, request = std::move(*parsed)](absl::StatusOr<DetectResult> result) {
                  if (result.ok()) ToProto(oip::ToInferResponse(std::move(*result), request), response);
                  reactor->Finish(ToGrpcStatus(result.status()));
                });
  return reactor;
}

}  // namespace detr::service
