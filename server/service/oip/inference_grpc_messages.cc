#include "server/service/oip/inference_grpc_messages.h"

#include <limits>

#include "server/service/pipeline/client_text.h"

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

}  // namespace

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

}  // namespace detr::service
