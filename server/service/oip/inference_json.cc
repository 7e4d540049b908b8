#include "server/service/oip/inference_json.h"

#include <algorithm>
#include <charconv>

#include <absl/strings/escaping.h>
#include <nlohmann/json.hpp>

#include "server/service/pipeline/client_text.h"

namespace detr::service::oip {
namespace {

using nlohmann::json;

absl::Status Invalid(const std::string& what) { return absl::InvalidArgumentError(what); }

absl::StatusOr<Parameters> ParseParameters(const json& object, const std::string& where) {
  Parameters parameters;
  if (object.is_null()) return parameters;
  if (!object.is_object()) return Invalid(where + "parameters must be an object");
  for (const auto& [name, value] : object.items()) {
    if (value.is_boolean()) {
      parameters[name] = value.get<bool>();
    } else if (value.is_number_integer() && !(value.is_number_unsigned() && value.get<std::uint64_t>() > INT64_MAX)) {
      parameters[name] = value.get<std::int64_t>();
    } else if (value.is_number()) {
      parameters[name] = value.get<double>();
    } else if (value.is_string()) {
      parameters[name] = value.get<std::string>();
    } else {
      return Invalid(where + "parameter '" + Echo(name) + "' must be a boolean, a number or a string");
    }
  }
  return parameters;
}

// The protocol allows "data" flat or nested as the shape: flattened here.
void Flatten(const json& data, std::vector<const json*>& out) {
  if (data.is_array()) {
    for (const auto& element : data) Flatten(element, out);
  } else {
    out.push_back(&data);
  }
}

absl::StatusOr<std::string> Base64(const std::string& text, const std::string& input) {
  std::string bytes;
  if (!absl::Base64Unescape(text, &bytes)) return Invalid("input '" + Echo(input) + "': invalid base64");
  return bytes;
}

absl::Status ParseData(const json& data, bool base64, InputTensor& tensor) {
  std::vector<const json*> elements;
  Flatten(data, elements);
  if (tensor.datatype == "BYTES") {
    for (const auto* element : elements) {
      if (element->is_string()) {
        if (!base64) {
          tensor.elements.push_back(element->get<std::string>());
          continue;
        }
        auto bytes = Base64(element->get<std::string>(), tensor.name);
        if (!bytes.ok()) return bytes.status();
        tensor.elements.push_back(std::move(*bytes));
      } else if (element->is_object() && element->contains("b64") && (*element)["b64"].is_string()) {
        auto bytes = Base64((*element)["b64"].get<std::string>(), tensor.name);
        if (!bytes.ok()) return bytes.status();
        tensor.elements.push_back(std::move(*bytes));
      } else {
        return Invalid("input '" + Echo(tensor.name) + "': a BYTES element is a string or {\"b64\": \"...\"}");
      }
    }
    return absl::OkStatus();
  }
  if (tensor.datatype == "UINT8") {
    tensor.data.reserve(elements.size());
    for (const auto* element : elements) {
      if (!element->is_number_unsigned() || element->get<std::uint64_t>() > 255) {
        return Invalid("input '" + Echo(tensor.name) + "': UINT8 data are integers in [0, 255]");
      }
      tensor.data.push_back(static_cast<char>(element->get<std::uint64_t>()));
    }
    return absl::OkStatus();
  }
  return absl::OkStatus();  // ToDetectInput names the unsupported type
}

absl::StatusOr<InputTensor> ParseInput(const json& input, const std::string& binary, std::size_t& binary_at) {
  if (!input.is_object() || !input.contains("name") || !input["name"].is_string() || !input.contains("datatype") ||
      !input["datatype"].is_string() || !input.contains("shape") || !input["shape"].is_array()) {
    return Invalid("each input is an object with name, datatype, shape and data");
  }
  InputTensor tensor;
  tensor.name = input["name"].get<std::string>();
  tensor.datatype = input["datatype"].get<std::string>();
  for (const auto& d : input["shape"]) {
    if (!d.is_number_integer()) return Invalid("input '" + Echo(tensor.name) + "': shape holds integers");
    tensor.shape.push_back(d.get<std::int64_t>());
  }
  auto parameters = ParseParameters(input.value("parameters", json()), "input '" + Echo(tensor.name) + "': ");
  if (!parameters.ok()) return parameters.status();
  if (const auto it = parameters->find("binary_data_size"); it != parameters->end()) {
    const auto* size = std::get_if<std::int64_t>(&it->second);
    if (!size || *size < 0 || static_cast<std::size_t>(*size) > binary.size() - binary_at) {
      return Invalid("input '" + Echo(tensor.name) + "': binary_data_size is past the end of the body");
    }
    std::string raw = binary.substr(binary_at, static_cast<std::size_t>(*size));
    binary_at += static_cast<std::size_t>(*size);
    if (tensor.datatype == "BYTES") {
      auto elements = SplitBytes(raw, tensor.name);
      if (!elements.ok()) return elements.status();
      tensor.elements = std::move(*elements);
    } else {
      tensor.data = std::move(raw);
    }
    return tensor;
  }
  if (!input.contains("data")) return Invalid("input '" + Echo(tensor.name) + "' has no data");
  const auto content_type = parameters->find("content_type");
  const bool base64 = content_type != parameters->end() && std::get_if<std::string>(&content_type->second) &&
                      std::get<std::string>(content_type->second) == "base64";
  if (auto status = ParseData(input["data"], base64, tensor); !status.ok()) return status;
  return tensor;
}

json ParametersJson(const Parameters& parameters) {
  json out = json::object();
  for (const auto& parameter : parameters) {  // (C++17: a lambda may not capture a structured binding)
    std::visit([&](const auto& v) { out[parameter.first] = v; }, parameter.second);
  }
  return out;
}

// A query string's value: an integer, a number, else a string.
Parameter QueryValue(const std::string& text) {
  std::int64_t integer = 0;
  const char* end = text.data() + text.size();
  if (auto [at, error] = std::from_chars(text.data(), end, integer); error == std::errc() && at == end) return integer;
  char* parsed_end = nullptr;
  const double number = std::strtod(text.c_str(), &parsed_end);
  if (!text.empty() && parsed_end == text.c_str() + text.size()) return number;
  return text;
}

}  // namespace

absl::StatusOr<std::string> PercentDecode(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    unsigned value = 0;
    if (i + 2 >= text.size()) return Invalid("a bad %-escape in the URL");
    const auto [at, error] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
    if (error != std::errc() || at != text.data() + i + 3) return Invalid("a bad %-escape in the URL");
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

absl::StatusOr<InferRequest> ParseInferRequest(std::string body, std::size_t json_bytes, const std::string& model) {
  if (json_bytes > body.size()) return Invalid("Inference-Header-Content-Length is past the end of the body");
  const std::size_t json_size = json_bytes ? json_bytes : body.size();
  const json document = json::parse(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(json_size), nullptr,
                                    /*allow_exceptions=*/false);
  if (document.is_discarded() || !document.is_object()) return Invalid("the body is not a JSON object");
  const std::string binary = json_bytes ? body.substr(json_bytes) : std::string();
  std::string().swap(body);
  InferRequest request;
  request.model = model;
  if (document.contains("id")) {
    if (!document["id"].is_string()) return Invalid("'id' must be a string");
    request.id = document["id"].get<std::string>();
  }
  auto parameters = ParseParameters(document.value("parameters", json()), "");
  if (!parameters.ok()) return parameters.status();
  request.parameters = std::move(*parameters);
  // A parameter of this binding (Triton's clients send it when they name no
  // outputs), not of the model: taken out before the model's are checked.
  if (const auto it = request.parameters.find("binary_data_output"); it != request.parameters.end()) {
    const auto* binary = std::get_if<bool>(&it->second);
    if (!binary) return Invalid("parameter 'binary_data_output' must be a boolean");
    request.binary_outputs_by_default = *binary;
    request.parameters.erase(it);
  }
  if (!document.contains("inputs") || !document["inputs"].is_array()) return Invalid("'inputs' must be a list");
  std::size_t binary_at = 0;
  for (const auto& input : document["inputs"]) {
    auto tensor = ParseInput(input, binary, binary_at);
    if (!tensor.ok()) return tensor.status();
    request.inputs.push_back(std::move(*tensor));
  }
  if (document.contains("outputs")) {
    if (!document["outputs"].is_array()) return Invalid("'outputs' must be a list");
    for (const auto& output : document["outputs"]) {
      if (!output.is_object() || !output.contains("name") || !output["name"].is_string()) {
        return Invalid("each output is an object with a name");
      }
      const auto name = output["name"].get<std::string>();
      auto output_parameters = ParseParameters(output.value("parameters", json()), "output '" + Echo(name) + "': ");
      if (!output_parameters.ok()) return output_parameters.status();
      for (const auto& [key, value] : *output_parameters) {
        if (key != "binary_data" || !std::holds_alternative<bool>(value)) {
          return Invalid("output '" + Echo(name) + "': unknown parameter '" + Echo(key) +
                         "'; an output takes binary_data (a boolean)");
        }
        request.binary_output[name] = std::get<bool>(value);
      }
      request.outputs.push_back(name);
    }
  }
  return request;
}

absl::StatusOr<InferRequest> ImageBodyRequest(std::string body, const std::string& query, const std::string& model) {
  InferRequest request;
  request.model = model;
  InputTensor image;
  image.name = "image";
  image.datatype = "BYTES";
  image.shape = {1};
  image.elements.push_back(std::move(body));
  request.inputs.push_back(std::move(image));
  std::size_t at = 0;
  while (at < query.size()) {
    const std::size_t end = std::min(query.find('&', at), query.size());
    const std::string pair = query.substr(at, end - at);
    at = end + 1;
    if (pair.empty()) continue;
    const std::size_t equals = pair.find('=');
    auto name = PercentDecode(pair.substr(0, equals));
    auto value = PercentDecode(equals == std::string::npos ? "" : pair.substr(equals + 1));
    if (!name.ok()) return name.status();
    if (!value.ok()) return value.status();
    if (*name == "id") {
      request.id = *value;
    } else {
      request.parameters[*name] = QueryValue(*value);
    }
  }
  return request;
}

InferResponseBody InferResponseJson(const InferResponse& response, const InferRequest& request) {
  json out = {{"model_name", response.model}, {"model_version", "1"}, {"id", response.id}};
  out["parameters"] = ParametersJson(response.parameters);
  out["outputs"] = json::array();
  std::string binary;
  for (const auto& tensor : response.outputs) {
    json t = {{"name", tensor.name}, {"datatype", tensor.datatype}, {"shape", tensor.shape}};
    if (request.BinaryOutput(tensor.name)) {
      const auto before = binary.size();
      binary += RawBytes(tensor);
      t["parameters"] = {{"binary_data_size", binary.size() - before}};
    } else if (tensor.datatype == "FP32") {
      t["data"] = tensor.fp32;
    } else if (tensor.datatype == "INT32") {
      t["data"] = tensor.int32;
    } else {
      t["data"] = tensor.bytes;
    }
    out["outputs"].push_back(std::move(t));
  }
  // Class names come from config files: replace, never throw, on bad UTF-8.
  InferResponseBody body{out.dump(-1, ' ', false, json::error_handler_t::replace), 0};
  if (!binary.empty() || std::any_of(response.outputs.begin(), response.outputs.end(),
                                     [&](const OutputTensor& t) { return request.BinaryOutput(t.name); })) {
    body.json_bytes = body.body.size();
    body.body += binary;
  }
  return body;
}

std::string ModelMetadataJson(const ModelMetadata& metadata) {
  const auto tensors = [](const std::vector<ModelMetadata::Tensor>& list) {
    json out = json::array();
    for (const auto& t : list) out.push_back({{"name", t.name}, {"datatype", t.datatype}, {"shape", t.shape}});
    return out;
  };
  json out = {{"name", metadata.name},
              {"versions", {"1"}},
              {"platform", metadata.platform},
              {"inputs", tensors(metadata.inputs)},
              {"outputs", tensors(metadata.outputs)},
              {"properties", metadata.properties}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ServerMetadataJson(const ServerMetadata& metadata) {
  return json({{"name", metadata.name}, {"version", metadata.version}, {"extensions", metadata.extensions}}).dump();
}

std::string ModelReadyJson(const std::string& name, bool ready) {
  return json({{"name", name}, {"ready", ready}}).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ModelConfigJson(const ModelConfiguration& config) {
  const auto tensors = [](const std::vector<ModelConfiguration::Tensor>& list) {
    json out = json::array();
    for (const auto& t : list) {
      out.push_back({{"name", t.name}, {"data_type", t.data_type}, {"dims", t.dims}, {"is_shape_tensor", false}});
    }
    return out;
  };
  json parameters = json::object();
  for (const auto& [key, value] : config.parameters) parameters[key] = {{"string_value", value}};
  json out = {{"name", config.name},
              {"platform", config.platform},
              {"backend", config.backend},
              {"max_batch_size", 0},
              {"input", tensors(config.inputs)},
              {"output", tensors(config.outputs)},
              {"instance_group", {{{"name", config.name}, {"kind", "KIND_CPU"}, {"count", config.instances}}}},
              {"parameters", parameters},
              {"model_transaction_policy", {{"decoupled", false}}},
              {"response_cache", {{"enable", false}}}};
  for (auto& input : out["input"]) input["optional"] = false;
  if (config.dynamic_batching) {
    out["dynamic_batching"] = {{"preferred_batch_size", {config.dynamic_batching->preferred_batch_size}},
                               {"max_queue_delay_microseconds", config.dynamic_batching->max_queue_delay_microseconds}};
  }
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ModelStatisticsJson(const std::vector<NamedStatistics>& statistics) {
  const auto duration = [](const DurationTotal& d) { return json{{"count", d.count}, {"ns", d.ns}}; };
  json list = json::array();
  for (const auto& [name, s] : statistics) {
    json batches = json::array();
    for (const auto& [size, batch] : s.batches) {
      batches.push_back({{"batch_size", size},
                         {"compute_infer", duration(batch.compute_infer)},
                         {"compute_output", duration(batch.compute_output)}});
    }
    list.push_back({{"name", name},
                    {"version", "1"},
                    {"last_inference", s.last_inference_ms},
                    {"inference_count", s.inference_count},
                    {"execution_count", s.execution_count},
                    {"inference_stats",
                     {{"success", duration(s.success)},
                      {"fail", duration(s.fail)},
                      {"queue", duration(s.queue)},
                      {"compute_input", duration(s.compute_input)},
                      {"compute_infer", duration(s.compute_infer)},
                      {"compute_output", duration(s.compute_output)},
                      {"cache_hit", duration({})},
                      {"cache_miss", duration({})}}},
                    {"batch_stats", batches}});
  }
  return json({{"model_stats", list}}).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ErrorJson(const std::string& message) {
  return json({{"error", message}}).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace detr::service::oip
