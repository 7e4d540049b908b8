#include "server/service/oip/inference_protocol.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "server/service/pipeline/client_text.h"

namespace detr::service::oip {
namespace {

const std::vector<std::string> kOutputs = {"boxes", "scores", "labels", "class_names"};

std::string ShapeText(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

absl::Status Invalid(const std::string& what) { return absl::InvalidArgumentError(what); }

// The image of the one input tensor: BYTES [1] (or [1, 1]) encoded, or
// UINT8 [H, W, 3] (or [1, H, W, 3]) raw.
absl::Status TakeImage(InputTensor& tensor, ImageInput& image) {
  auto shape = tensor.shape;
  const std::string what = "input '" + Echo(tensor.name) + "' (" + Echo(tensor.datatype) + " " + ShapeText(shape) + ")";
  if (tensor.datatype == "BYTES") {
    if (shape.size() == 2 && shape[0] == 1) shape.erase(shape.begin());
    if (shape != std::vector<std::int64_t>{1} || tensor.elements.size() != 1) {
      return Invalid(what + ": an encoded image is BYTES of shape [1] with one element");
    }
    image.kind = ImageInput::Kind::kEncoded;
    image.bytes = std::move(tensor.elements.front());
    return absl::OkStatus();
  }
  if (tensor.datatype == "UINT8") {
    if (shape.size() == 4 && shape[0] == 1) shape.erase(shape.begin());
    if (shape.size() != 3 || shape[2] != 3 || shape[0] <= 0 || shape[1] <= 0) {
      return Invalid(what + ": raw pixels are UINT8 of shape [height, width, 3] (RGB)");
    }
    image.kind = ImageInput::Kind::kRaw;
    image.height = shape[0];
    image.width = shape[1];
    image.bytes = std::move(tensor.data);  // its size is checked against the shape with the other limits
    return absl::OkStatus();
  }
  return Invalid(what + ": the image is BYTES (encoded) or UINT8 (raw RGB)");
}

template <typename T>
absl::StatusOr<std::optional<T>> Get(const Parameters& parameters, const std::string& name, const char* type) {
  const auto it = parameters.find(name);
  if (it == parameters.end()) return std::optional<T>();
  if (const auto* value = std::get_if<T>(&it->second)) return std::optional<T>(*value);
  return Invalid("parameter '" + name + "' must be " + type);
}

// A number parameter may arrive as an int64 or a double (JSON has one kind).
absl::StatusOr<std::optional<double>> GetNumber(const Parameters& parameters, const std::string& name) {
  const auto it = parameters.find(name);
  if (it == parameters.end()) return std::optional<double>();
  if (const auto* value = std::get_if<double>(&it->second)) return std::optional<double>(*value);
  if (const auto* value = std::get_if<std::int64_t>(&it->second)) {
    return std::optional<double>(static_cast<double>(*value));
  }
  return Invalid("parameter '" + name + "' must be a number");
}

absl::StatusOr<std::vector<int>> ClassIds(const std::string& text) {
  std::vector<int> ids;
  const char* at = text.data();
  const char* end = text.data() + text.size();
  while (at < end) {
    while (at < end && (*at == ',' || *at == ' ')) ++at;
    if (at == end) break;
    int id = 0;
    const auto [next, error] = std::from_chars(at, end, id);
    if (error != std::errc() || id < 0) {
      return Invalid("parameter 'classes' must list class ids separated by commas, got '" + Echo(text) + "'");
    }
    ids.push_back(id);
    at = next;
  }
  return ids;
}

absl::Status ApplyParameters(const Parameters& parameters, DetectInput& input) {
  static const std::set<std::string> kKnown = {"score_threshold", "max_detections", "routing_key", "classes",
                                               "timeout"};
  for (const auto& [name, value] : parameters) {
    if (!kKnown.count(name)) {
      return Invalid("unknown parameter '" + Echo(name) +
                     "'; this server takes score_threshold, max_detections, routing_key, classes and timeout");
    }
  }
  auto threshold = GetNumber(parameters, "score_threshold");
  if (!threshold.ok()) return threshold.status();
  if (*threshold) input.options.score_threshold = static_cast<float>(**threshold);
  auto max_detections = Get<std::int64_t>(parameters, "max_detections", "an integer");
  if (!max_detections.ok()) return max_detections.status();
  if (*max_detections) {
    // Negative stays negative for validation to refuse; no model has 2^30 queries.
    input.options.max_detections = static_cast<int>(std::clamp<std::int64_t>(**max_detections, -1, 1 << 30));
  }
  auto routing_key = Get<std::string>(parameters, "routing_key", "a string");
  if (!routing_key.ok()) return routing_key.status();
  if (*routing_key) input.routing_key = **routing_key;
  auto classes = Get<std::string>(parameters, "classes", "a string of comma-separated class ids");
  if (!classes.ok()) return classes.status();
  if (*classes) {
    auto ids = ClassIds(**classes);
    if (!ids.ok()) return ids.status();
    input.options.class_ids = std::move(*ids);
  }
  return Timeout(parameters).status();
}

OutputTensor Output(std::string name, std::string datatype, std::vector<std::int64_t> shape) {
  OutputTensor out;
  out.name = std::move(name);
  out.datatype = std::move(datatype);
  out.shape = std::move(shape);
  return out;
}

}  // namespace

absl::StatusOr<std::optional<std::chrono::microseconds>> Timeout(const Parameters& parameters) {
  auto timeout = Get<std::int64_t>(parameters, "timeout", "an integer (microseconds)");
  if (!timeout.ok()) return timeout.status();
  if (!*timeout) return std::optional<std::chrono::microseconds>();
  if (**timeout <= 0) return Invalid("parameter 'timeout' must be > 0 microseconds");
  return std::optional<std::chrono::microseconds>(std::chrono::microseconds(**timeout));
}

bool InferRequest::BinaryOutput(const std::string& name) const {
  const auto it = binary_output.find(name);
  return it == binary_output.end() ? binary_outputs_by_default : it->second;
}

absl::StatusOr<DetectInput> ToDetectInput(InferRequest& request) {
  DetectInput input;
  input.model = request.model;
  input.request_id = request.id;
  for (const auto& name : request.outputs) {
    if (std::find(kOutputs.begin(), kOutputs.end(), name) == kOutputs.end()) {
      return Invalid("unknown output '" + Echo(name) + "'; the outputs are boxes, scores, labels and class_names");
    }
  }
  if (request.inputs.size() != 1) {
    return Invalid("a request has one input tensor, the image; got " + std::to_string(request.inputs.size()));
  }
  if (auto status = TakeImage(request.inputs.front(), input.image); !status.ok()) return status;
  if (auto status = ApplyParameters(request.parameters, input); !status.ok()) return status;
  return input;
}

InferResponse ToInferResponse(DetectResult&& result, const InferRequest& request) {
  InferResponse response;
  response.model = request.model;
  response.id = std::move(result.request_id);
  const auto n = static_cast<std::int64_t>(result.detections.size());
  auto boxes = Output("boxes", "FP32", {n, 4});
  auto scores = Output("scores", "FP32", {n});
  auto labels = Output("labels", "INT32", {n});
  auto names = Output("class_names", "BYTES", {n});
  for (auto& d : result.detections) {
    boxes.fp32.insert(boxes.fp32.end(), d.box, d.box + 4);
    scores.fp32.push_back(d.score);
    labels.int32.push_back(d.class_id);
    names.bytes.push_back(std::move(d.class_name));
  }
  for (auto* tensor : {&boxes, &scores, &labels, &names}) {
    const auto& wanted = request.outputs;
    if (wanted.empty() || std::find(wanted.begin(), wanted.end(), tensor->name) != wanted.end()) {
      response.outputs.push_back(std::move(*tensor));
    }
  }
  auto& p = response.parameters;
  p["model"] = std::move(result.model);
  if (!result.experiment.empty()) p["experiment"] = std::move(result.experiment);
  p["batch_size"] = static_cast<std::int64_t>(result.batch_size);
  p["queue_seconds"] = result.timings.queue;
  p["preprocess_seconds"] = result.timings.preprocess;
  p["inference_seconds"] = result.timings.inference;
  p["postprocess_seconds"] = result.timings.postprocess;
  p["inference_memory_bytes"] = static_cast<std::int64_t>(result.inference_memory_bytes);
  p["image_width"] = static_cast<std::int64_t>(result.image_width);
  p["image_height"] = static_cast<std::int64_t>(result.image_height);
  p["attention_encoder_self"] = std::move(result.attention.encoder_self);
  p["attention_decoder_self"] = std::move(result.attention.decoder_self);
  p["attention_decoder_cross"] = std::move(result.attention.decoder_cross);
  return response;
}

absl::StatusOr<std::vector<std::string>> SplitBytes(const std::string& raw, const std::string& input) {
  std::vector<std::string> elements;
  std::size_t at = 0;
  while (at < raw.size()) {
    if (raw.size() - at < 4) return Invalid("input '" + Echo(input) + "': BYTES cut short");
    const auto* p = reinterpret_cast<const unsigned char*>(raw.data() + at);
    const std::size_t length = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<std::size_t>(p[3]) << 24);
    at += 4;
    if (length > raw.size() - at) return Invalid("input '" + Echo(input) + "': BYTES cut short");
    elements.emplace_back(raw, at, length);
    at += length;
  }
  return elements;
}

std::string JoinBytes(const std::vector<std::string>& elements) {
  std::string raw;
  for (const auto& element : elements) {
    const auto length = static_cast<std::uint32_t>(element.size());
    const char prefix[4] = {static_cast<char>(length), static_cast<char>(length >> 8), static_cast<char>(length >> 16),
                            static_cast<char>(length >> 24)};
    raw.append(prefix, 4).append(element);
  }
  return raw;
}

std::string RawBytes(const OutputTensor& tensor) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the protocol's binary tensors are little endian");
  if (tensor.datatype == "FP32") {
    return {reinterpret_cast<const char*>(tensor.fp32.data()), tensor.fp32.size() * sizeof(float)};
  }
  if (tensor.datatype == "INT32") {
    return {reinterpret_cast<const char*>(tensor.int32.data()), tensor.int32.size() * sizeof(std::int32_t)};
  }
  return JoinBytes(tensor.bytes);
}

}  // namespace detr::service::oip
