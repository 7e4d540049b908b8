#include "server/service/detector_service.h"

#include <chrono>
#include <cmath>
#include <mutex>
#include <optional>

#include <spdlog/spdlog.h>

#include "server/core/detection_agreement.h"
#include "server/core/runtime.h"
#include "server/image/image_header.h"
#include "server/image/preprocess.h"
#include "server/service/client_text.h"
#include "server/service/detect_stream_reactor.h"

namespace detr {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::optional<RequestError> CheckLength(const char* field, const std::string& value) {
  if (value.size() <= kMaxClientStringBytes) return std::nullopt;
  return RequestError{ErrorKind::kInvalidArgument, std::string(field) + " is " + std::to_string(value.size()) +
                                                       " bytes long; the limit is " +
                                                       std::to_string(kMaxClientStringBytes)};
}

std::optional<RequestError> Validate(const v1::DetectRequest& request, std::int64_t max_pixels) {
  for (const auto& [field, value] : {std::pair<const char*, const std::string&>{"model", request.model()},
                                     {"request_id", request.request_id()},
                                     {"routing_key", request.routing_key()}}) {
    if (auto error = CheckLength(field, value)) return error;
  }
  const float threshold = request.score_threshold();
  if (!std::isfinite(threshold) || threshold < 0 || threshold > 1) {
    return RequestError{ErrorKind::kInvalidArgument, "score_threshold must be a number in [0, 1], got " +
                                                         std::to_string(threshold)};
  }
  const auto& image = request.image();
  switch (image.source_case()) {
    case v1::Image::kEncoded:
      if (image.encoded().empty()) return RequestError{ErrorKind::kInvalidArgument, "image.encoded is empty (0 bytes)"};
      return std::nullopt;
    case v1::Image::kRaw: {
      const auto& raw = image.raw();
      if (raw.width() == 0 || raw.height() == 0) {
        return RequestError{ErrorKind::kInvalidArgument, "image.raw has size " + std::to_string(raw.width()) + "x" +
                                                             std::to_string(raw.height()) + "; both must be positive"};
      }
      const auto pixels = static_cast<std::int64_t>(raw.width()) * raw.height();
      if (pixels > max_pixels) {
        return RequestError{ErrorKind::kInvalidArgument, "image.raw has " + std::to_string(pixels) +
                                                             " pixels, over the server's limit of " + std::to_string(max_pixels)};
      }
      if (static_cast<std::int64_t>(raw.rgb().size()) != pixels * 3) {
        return RequestError{ErrorKind::kInvalidArgument,
                            "image.raw.rgb has " + std::to_string(raw.rgb().size()) + " bytes; " +
                                std::to_string(raw.width()) + "x" + std::to_string(raw.height()) + " RGB needs " +
                                std::to_string(pixels * 3)};
      }
      return std::nullopt;
    }
    default:
      return RequestError{ErrorKind::kInvalidArgument, "image is missing: set image.encoded or image.raw"};
  }
}

// Decodes the request's image to RGB, refusing it before a full decode when
// its header already shows it is over the pixel limit.
cv::Mat DecodeRequestImage(const v1::Image& image, std::int64_t max_pixels) {
  if (image.source_case() == v1::Image::kRaw) {
    const auto& raw = image.raw();
    cv::Mat view(static_cast<int>(raw.height()), static_cast<int>(raw.width()), CV_8UC3,
                 const_cast<char*>(raw.rgb().data()));
    return view.clone();
  }
  const auto& bytes = image.encoded();
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  if (auto size = PeekImageSize(data, bytes.size())) {
    if (size->first * size->second > max_pixels || size->first <= 0 || size->second <= 0) {
      throw std::invalid_argument("image header claims " + std::to_string(size->first) + "x" +
                                  std::to_string(size->second) + " pixels, outside the server's limit of " +
                                  std::to_string(max_pixels) + " pixels");
    }
  }
  auto rgb = DecodeImage(data, bytes.size());
  if (static_cast<std::int64_t>(rgb.rows) * rgb.cols > max_pixels) {
    throw std::invalid_argument("image has " + std::to_string(rgb.cols) + "x" + std::to_string(rgb.rows) +
                                " pixels, over the server's limit of " + std::to_string(max_pixels));
  }
  return rgb;
}

PreparedImage PrepareFor(const cv::Mat& rgb, const PreprocessingConfig& preprocessing) {
  PreparedImage prepared;
  prepared.original_height = rgb.rows;
  prepared.original_width = rgb.cols;
  if (preprocessing.fixed_canvas()) {
    std::tie(prepared.pixels, prepared.mask) = ToCanvasInput(rgb, preprocessing.canvas_height, preprocessing.canvas_width);
  } else {
    prepared.pixels = ToModelInput(rgb, ResizePolicy{preprocessing.shortest_edge, preprocessing.longest_edge});
    const auto height = prepared.pixels.size(1), width = prepared.pixels.size(2);
    prepared.mask = PaddingMask(height, width, height, width);
  }
  return prepared;
}

DetectOptions OptionsOf(const v1::DetectRequest& request) {
  DetectOptions options;
  options.score_threshold = request.score_threshold();
  options.max_detections = static_cast<int>(request.max_detections());
  options.class_ids.assign(request.class_ids().begin(), request.class_ids().end());
  return options;
}

void FillAttention(const ModelConfig& config, v1::AttentionTypes* out) {
  out->set_encoder_self(ToString(config.encoder_self.type));
  out->set_decoder_self(ToString(config.decoder_self.type));
  out->set_decoder_cross(ToString(config.decoder_cross.type));
}

// Holds both answers of a shadow experiment until the second arrives.
struct ShadowComparison {
  std::mutex mutex;
  std::optional<Detections> primary, shadow;  // guarded by mutex
};

void OfferShadowResult(const std::shared_ptr<ShadowComparison>& comparison, bool is_primary, const Detections& detections,
                       Metrics& metrics, const std::string& experiment) {
  std::lock_guard<std::mutex> lock(comparison->mutex);
  (is_primary ? comparison->primary : comparison->shadow) = detections;
  if (comparison->primary && comparison->shadow) {
    metrics.RecordShadowAgreement(experiment, DetectionAgreement(*comparison->primary, *comparison->shadow));
  }
}

}  // namespace

DetectorService::DetectorService(const ServerConfig& config,
                                 const std::map<std::string, std::unique_ptr<ModelRunner>>& runners,
                                 const Router& router, Metrics& metrics)
    : config_(config), runners_(runners), router_(router), metrics_(metrics), preprocess_pool_(config.preprocess_threads) {}

void DetectorService::Reject(const std::string& model, const std::string& request_id, const RequestError& error,
                             Clock::time_point start, const Done& done) {
  const auto status = ToGrpcStatus(error);
  const char* code = StatusCodeName(status.error_code());
  // Metric labels come only from configured names: a client's made-up name
  // must not add series.
  const bool known = runners_.count(model) != 0 || config_.FindExperiment(model) != nullptr;
  metrics_.RecordRequest(known ? model : (model.empty() ? "none" : "unknown"), "none", code, SecondsSince(start));
  spdlog::warn("request '{}' failed: {} {}", Echo(request_id), code, error.message);
  done(status, v1::DetectResponse());
}

void DetectorService::Handle(v1::DetectRequest request, std::shared_ptr<const CallState> call, Done done) {
  const auto start = Clock::now();
  if (draining_.load()) {
    return Reject(request.model(), request.request_id(), {ErrorKind::kDraining, "the server is shutting down"}, start, done);
  }
  if (auto error = Validate(request, config_.max_pixels)) return Reject(request.model(), request.request_id(), *error, start, done);
  Route route;
  RequestError error;
  if (!router_.Resolve(request.model(), request.routing_key(), route, error)) {
    return Reject(request.model(), request.request_id(), error, start, done);
  }
  preprocess_pool_.Post([this, request = std::move(request), call = std::move(call), route, start,
                         done = std::move(done)]() mutable { Prepare(request, std::move(call), route, start, std::move(done)); });
}

void DetectorService::Prepare(const v1::DetectRequest& request, std::shared_ptr<const CallState> call, const Route& route,
                              Clock::time_point start, Done done) {
  const auto preprocess_start = Clock::now();
  cv::Mat rgb;
  PreparedImage image;
  try {
    rgb = DecodeRequestImage(request.image(), config_.max_pixels);
    image = PrepareFor(rgb, route.primary->entry().preprocessing);
  } catch (const std::exception& e) {
    return Reject(route.primary->name(), request.request_id(), {ErrorKind::kInvalidArgument, ErrorMessage(e)}, start, done);
  }
  const double preprocess_seconds = SecondsSince(preprocess_start);
  metrics_.RecordStage(route.primary->name(), Metrics::Stage::kPreprocess, preprocess_seconds);

  std::shared_ptr<ShadowComparison> comparison;
  if (route.shadow) {
    comparison = std::make_shared<ShadowComparison>();
    PreparedImage shadow_image = PrepareFor(rgb, route.shadow->entry().preprocessing);
    route.shadow->Submit(std::move(shadow_image), OptionsOf(request), nullptr,
                         [this, comparison, experiment = route.experiment](InferenceOutcome outcome) {
                           if (outcome.ok) OfferShadowResult(comparison, false, outcome.detections, metrics_, experiment);
                         });
  }
  auto abandoned = [call = std::move(call)] { return call->abandoned(); };
  const int width = rgb.cols, height = rgb.rows;
  route.primary->Submit(std::move(image), OptionsOf(request), abandoned,
                        [this, route, request_id = request.request_id(), start, preprocess_seconds, width, height, comparison,
                         done = std::move(done)](InferenceOutcome outcome) {
                          if (comparison && outcome.ok) {
                            OfferShadowResult(comparison, true, outcome.detections, metrics_, route.experiment);
                          }
                          Answer(route, request_id, start, preprocess_seconds, width, height, std::move(outcome), done);
                        });
}

void DetectorService::Answer(const Route& route, const std::string& request_id, Clock::time_point start,
                             double preprocess_seconds, int width, int height, InferenceOutcome outcome,
                             const Done& done) {
  const auto& model = *route.primary;
  if (!outcome.ok) {
    const auto status = ToGrpcStatus(outcome.error);
    metrics_.RecordRequest(model.name(), model.attention_label(), StatusCodeName(status.error_code()), SecondsSince(start));
    spdlog::warn("request '{}' failed: {} {}", Echo(request_id), StatusCodeName(status.error_code()),
                 outcome.error.message);
    return done(status, v1::DetectResponse());
  }
  v1::DetectResponse response;
  for (const auto& d : outcome.detections) {
    auto* out = response.add_detections();
    out->set_class_id(d.class_id);
    out->set_class_name(d.class_name);
    out->set_score(d.score);
    out->mutable_box()->set_x0(d.box[0]);
    out->mutable_box()->set_y0(d.box[1]);
    out->mutable_box()->set_x1(d.box[2]);
    out->mutable_box()->set_y1(d.box[3]);
  }
  response.set_model(model.name());
  FillAttention(model.entry().config, response.mutable_attention());
  response.set_experiment(route.experiment);
  response.set_batch_size(static_cast<std::uint32_t>(outcome.batch_size));
  auto* timings = response.mutable_timings();
  timings->set_queue_seconds(outcome.queue_seconds);
  timings->set_inference_seconds(outcome.inference_seconds);
  timings->set_preprocess_seconds(preprocess_seconds);
  timings->set_postprocess_seconds(outcome.postprocess_seconds);
  response.set_inference_memory_bytes(outcome.inference_memory_bytes);
  response.set_image_width(static_cast<std::uint32_t>(width));
  response.set_image_height(static_cast<std::uint32_t>(height));
  response.set_request_id(request_id);
  metrics_.RecordRequest(model.name(), model.attention_label(), "OK", SecondsSince(start));
  done(grpc::Status::OK, std::move(response));
}

namespace {

// A unary Detect: its CallState learns of the client's cancellation.
class DetectReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit DetectReactor(grpc::CallbackServerContext* context)
      : call_(std::make_shared<CallState>(context->deadline())) {}
  std::shared_ptr<const CallState> call() const { return call_; }
  void OnCancel() override { call_->Cancel(); }
  void OnDone() override { delete this; }  // gRPC's reactor contract: the last event

 private:
  const std::shared_ptr<CallState> call_;
};

}  // namespace

grpc::ServerUnaryReactor* DetectorService::Detect(grpc::CallbackServerContext* context, const v1::DetectRequest* request,
                                                  v1::DetectResponse* response) {
  auto* reactor = new DetectReactor(context);  // deletes itself in OnDone
  Handle(*request, reactor->call(), [reactor, response](const grpc::Status& status, v1::DetectResponse&& result) {
    if (status.ok()) *response = std::move(result);
    reactor->Finish(status);
  });
  return reactor;
}

grpc::ServerBidiReactor<v1::DetectRequest, v1::DetectResponse>* DetectorService::DetectStream(
    grpc::CallbackServerContext* context) {
  return new DetectStreamReactor(*this, context);  // deletes itself when done (gRPC's reactor contract)
}

v1::Model DetectorService::Describe(const ModelRunner& runner) const {
  v1::Model model;
  model.set_name(runner.name());
  FillAttention(runner.entry().config, model.mutable_attention());
  model.set_config_json(runner.entry().config.ToJsonText());
  model.set_parameter_count(runner.parameter_count());
  model.set_weights(runner.entry().weights);
  model.set_random_weights(runner.random_weights());
  model.set_max_batch_size(static_cast<std::uint32_t>(runner.entry().batching.max_batch_size));
  model.set_max_queue_delay_seconds(std::chrono::duration<double>(runner.entry().batching.max_queue_delay).count());
  for (const auto& name : runner.entry().config.ClassNames()) model.add_class_names(name);
  return model;
}

grpc::ServerUnaryReactor* DetectorService::ListModels(grpc::CallbackServerContext* context,
                                                      const v1::ListModelsRequest*, v1::ListModelsResponse* response) {
  for (const auto& entry : config_.models) *response->add_models() = Describe(*runners_.at(entry.name));
  for (const auto& experiment : config_.experiments) {
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
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* DetectorService::GetModel(grpc::CallbackServerContext* context,
                                                    const v1::GetModelRequest* request, v1::Model* response) {
  auto* reactor = context->DefaultReactor();
  const auto it = runners_.find(request->name());
  if (it == runners_.end()) {
    reactor->Finish(ToGrpcStatus({ErrorKind::kNotFound, "no model named '" + Echo(request->name()) + "'"}));
  } else {
    *response = Describe(*it->second);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

}  // namespace detr
