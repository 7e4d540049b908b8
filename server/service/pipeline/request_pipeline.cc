#include "server/service/pipeline/request_pipeline.h"

#include <cmath>
#include <mutex>
#include <optional>
#include <stdexcept>

#include <opencv2/core/mat.hpp>
#include <spdlog/spdlog.h>

#include "server/image/decode.h"
#include "server/image/image_header.h"
#include "server/image/preprocess.h"
#include "server/service/pipeline/client_text.h"
#include "server/service/status_mapping.h"
#include "server/types/detection_agreement.h"

namespace detr::service {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

absl::Status CheckLength(const char* field, const std::string& value) {
  if (value.size() <= kMaxClientStringBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(std::string(field) + " is " + std::to_string(value.size()) +
                                    " bytes long; the limit is " + std::to_string(kMaxClientStringBytes));
}

absl::Status Validate(const DetectInput& input, std::int64_t max_pixels) {
  for (const auto& [field, value] : {std::pair<const char*, const std::string&>{"model", input.model},
                                     {"request_id", input.request_id},
                                     {"routing_key", input.routing_key}}) {
    if (auto status = CheckLength(field, value); !status.ok()) return status;
  }
  const float threshold = input.options.score_threshold;
  if (!std::isfinite(threshold) || threshold < 0 || threshold > 1) {
    return absl::InvalidArgumentError("score_threshold must be a number in [0, 1], got " + std::to_string(threshold));
  }
  if (input.options.max_detections < 0) {
    return absl::InvalidArgumentError("max_detections must be >= 0 (0 = all), got " +
                                      std::to_string(input.options.max_detections));
  }
  const auto& image = input.image;
  switch (image.kind) {
    case ImageInput::Kind::kEncoded:
      if (image.bytes.empty()) return absl::InvalidArgumentError("the encoded image is empty (0 bytes)");
      return absl::OkStatus();
    case ImageInput::Kind::kRaw: {
      const std::string size = std::to_string(image.width) + "x" + std::to_string(image.height);
      if (image.width <= 0 || image.height <= 0) {
        return absl::InvalidArgumentError("the raw image has size " + size + "; both must be positive");
      }
      if (image.width > max_pixels || image.height > max_pixels || image.width * image.height > max_pixels) {
        return absl::InvalidArgumentError("the raw image has " + size + " pixels, over the server's limit of " +
                                          std::to_string(max_pixels));
      }
      if (static_cast<std::int64_t>(image.bytes.size()) != image.width * image.height * 3) {
        return absl::InvalidArgumentError("the raw image has " + std::to_string(image.bytes.size()) + " bytes; " +
                                          size + " RGB needs " + std::to_string(image.width * image.height * 3));
      }
      return absl::OkStatus();
    }
    case ImageInput::Kind::kMissing: break;
  }
  return absl::InvalidArgumentError("the request has no image: send an encoded image or raw RGB pixels");
}

// The request's image as RGB, refused before a full decode when its header
// already shows it is over the pixel limit. Throws std::invalid_argument for
// bytes that are not an acceptable image.
cv::Mat DecodeRequestImage(const ImageInput& image, std::int64_t max_pixels) {
  if (image.kind == ImageInput::Kind::kRaw) {
    const cv::Mat view(static_cast<int>(image.height), static_cast<int>(image.width), CV_8UC3,
                       const_cast<char*>(image.bytes.data()));
    return view.clone();
  }
  const auto* data = reinterpret_cast<const unsigned char*>(image.bytes.data());
  if (auto size = image::PeekImageSize(data, image.bytes.size())) {
    if (size->first <= 0 || size->second <= 0 || size->first * size->second > max_pixels) {
      throw std::invalid_argument("image header claims " + std::to_string(size->first) + "x" +
                                  std::to_string(size->second) + " pixels, outside the server's limit of " +
                                  std::to_string(max_pixels) + " pixels");
    }
  }
  auto rgb = image::DecodeImage(data, image.bytes.size());
  if (static_cast<std::int64_t>(rgb.rows) * rgb.cols > max_pixels) {
    throw std::invalid_argument("image has " + std::to_string(rgb.cols) + "x" + std::to_string(rgb.rows) +
                                " pixels, over the server's limit of " + std::to_string(max_pixels));
  }
  return rgb;
}

core::PreparedImage PrepareFor(const cv::Mat& rgb, const PreprocessingConfig& preprocessing) {
  if (preprocessing.fixed_canvas()) {
    return image::PrepareOnCanvas(rgb, preprocessing.canvas_height, preprocessing.canvas_width);
  }
  return image::Prepare(rgb, image::ResizePolicy{preprocessing.shortest_edge, preprocessing.longest_edge});
}

// Runs `step`; an exception becomes INVALID_ARGUMENT when it is the input's
// fault (std::invalid_argument) and INTERNAL otherwise.
template <typename Step>
absl::Status Guarded(const char* stage, Step&& step) {
  try {
    step();
    return absl::OkStatus();
  } catch (const std::invalid_argument& e) {
    return absl::InvalidArgumentError(e.what());
  } catch (const std::exception& e) {
    return absl::InternalError(std::string(stage) + " failed: " + e.what());
  } catch (...) {
    return absl::InternalError(std::string(stage) + " failed");
  }
}

}  // namespace

// Holds both answers of a shadow experiment until the second arrives.
struct ShadowComparison {
  std::mutex mutex;
  std::optional<Detections> primary, shadow;  // guarded by mutex

  // Returns the agreement once both arms have offered their detections.
  std::optional<double> Offer(bool is_primary, const Detections& detections) {
    std::lock_guard<std::mutex> lock(mutex);
    (is_primary ? primary : shadow) = detections;
    if (!primary || !shadow) return std::nullopt;
    return DetectionAgreement(*primary, *shadow);
  }
};

// One request's journey through the pipeline.
struct RequestPipeline::Request {
  DetectInput input;
  std::shared_ptr<const CallState> call;
  Respond respond;
  Clock::time_point start = Clock::now();
  std::shared_ptr<const ModelSet> models;  // the set it was routed by, alive until it is answered
  Route route;
  Admission::Ticket admission;
  double preprocess_seconds = 0;
  int width = 0, height = 0;  // of the original image
  std::shared_ptr<ShadowComparison> shadow;
};

RequestPipeline::RequestPipeline(const PipelineOptions& options, Metrics& metrics,
                                 std::shared_ptr<const ModelSet> models)
    : options_(options),
      metrics_(metrics),
      admission_(options.max_preprocessing, options.max_preprocessing_bytes),
      failure_log_(/*per_second=*/20, /*burst=*/100),
      models_(std::move(models)),
      preprocess_pool_(std::make_unique<ThreadPool>(options.preprocess_threads, [](const std::string& what) {
        spdlog::critical("a preprocessing task threw past its own handling: {}", what);
      })) {}

RequestPipeline::~RequestPipeline() {
  preprocess_pool_.reset();  // every admitted request has reached its model's queue, or is answered
  reaper_.Retire(std::atomic_exchange(&models_, std::shared_ptr<const ModelSet>()));
  // reaper_'s destructor then waits until the last request lets go of its set.
}

std::shared_ptr<const ModelSet> RequestPipeline::models() const { return std::atomic_load(&models_); }

void RequestPipeline::SetModels(std::shared_ptr<const ModelSet> models) {
  reaper_.Retire(std::atomic_exchange(&models_, std::move(models)));
}

void RequestPipeline::Run(DetectInput input, std::shared_ptr<const CallState> call, Respond respond) {
  auto request = std::make_shared<Request>();
  request->input = std::move(input);
  request->call = call ? std::move(call) : std::make_shared<CallState>();
  request->respond = std::move(respond);
  if (draining_.load()) return Finish(request, absl::UnavailableError("the server is shutting down"));
  if (auto status = Validate(request->input, options_.max_pixels); !status.ok()) return Finish(request, status);
  request->models = models();
  auto route = request->models->router().Resolve(request->input.model, request->input.routing_key);
  if (!route.ok()) return Finish(request, route.status());
  request->route = *route;
  auto ticket = admission_.TryAdmit(static_cast<std::int64_t>(request->input.image.bytes.size()));
  if (!ticket) {
    return Finish(request, absl::ResourceExhaustedError("the server is preprocessing as many requests as it admits (" +
                                                        std::to_string(admission_.max_requests()) + " requests or " +
                                                        std::to_string(admission_.max_bytes() >> 20) +
                                                        " MiB of images); retry later"));
  }
  request->admission = std::move(*ticket);
  preprocess_pool_->Post([this, request] { Preprocess(request); });
}

void RequestPipeline::Preprocess(const RequestPtr& request) {
  if (auto status = request->call->Check("before preprocessing"); !status.ok()) return Finish(request, status);
  const auto start = Clock::now();
  cv::Mat rgb;
  core::PreparedImage image;
  auto status = Guarded("preprocessing", [&] {
    rgb = DecodeRequestImage(request->input.image, options_.max_pixels);
    options_.faults.At("preprocess");
    image = PrepareFor(rgb, request->route.primary->entry().preprocessing);
  });
  // The encoded bytes are no longer needed: free them, and the admission
  // place they held, before the request waits in a model's queue.
  std::string().swap(request->input.image.bytes);
  request->admission.Release();
  if (!status.ok()) return Finish(request, status);
  request->preprocess_seconds = SecondsSince(start);
  request->width = rgb.cols;
  request->height = rgb.rows;
  if (request->route.shadow) SubmitShadow(request, rgb);

  InferenceJob job;
  job.image = std::move(image);
  job.options = request->input.options;
  job.call = request->call;
  job.done = [this, request](absl::StatusOr<InferenceOutcome> outcome) { OnInferred(request, std::move(outcome)); };
  request->route.primary->Submit(std::move(job));
}

// The shadow arm runs off the response path: whatever happens to it is logged
// and counted under the shadow model, and the primary answers regardless.
void RequestPipeline::SubmitShadow(const RequestPtr& request, const cv::Mat& rgb) {
  ModelRunner& shadow = *request->route.shadow;
  InferenceJob job;
  auto status = Guarded("the shadow arm", [&] {
    options_.faults.At("shadow");
    job.image = PrepareFor(rgb, shadow.entry().preprocessing);
  });
  if (!status.ok()) {
    shadow.metrics().RecordRequest(status.code(), SecondsSince(request->start));
    spdlog::error("experiment {}: shadow model {} failed: {}", request->route.experiment, shadow.name(),
                  std::string(status.message()));
    return;
  }
  request->shadow = std::make_shared<ShadowComparison>();
  job.options = request->input.options;
  job.done = [&metrics = metrics_, comparison = request->shadow, experiment = request->route.experiment,
              &shadow](absl::StatusOr<InferenceOutcome> outcome) {
    if (!outcome.ok()) {
      shadow.metrics().RecordRequest(outcome.status().code(), 0);
      return;
    }
    if (auto agreement = comparison->Offer(false, outcome->detections)) {
      metrics.ShadowAgreement(experiment).Observe(*agreement);
    }
  };
  shadow.Submit(std::move(job));
}

void RequestPipeline::OnInferred(const RequestPtr& request, absl::StatusOr<InferenceOutcome> outcome) {
  if (!outcome.ok()) return Finish(request, outcome.status());
  if (request->shadow) {
    if (auto agreement = request->shadow->Offer(true, outcome->detections)) {
      metrics_.ShadowAgreement(request->route.experiment).Observe(*agreement);
    }
  }
  std::optional<DetectResult> result;
  auto status = Guarded("post-processing", [&] {
    options_.faults.At("postprocess");
    result = ResultOf(*request, std::move(*outcome));
  });
  if (!status.ok())
    return Finish(request, status.code() == absl::StatusCode::kInvalidArgument
                               ? absl::InternalError(status.message())  // never the client's fault here
                               : status);
  Finish(request, std::move(*result));
}

DetectResult RequestPipeline::ResultOf(const Request& request, InferenceOutcome&& outcome) const {
  const ModelRunner& model = *request.route.primary;
  DetectResult result;
  result.detections = std::move(outcome.detections);
  result.model = model.name();
  result.attention = model.attention();
  result.experiment = request.route.experiment;
  result.request_id = request.input.request_id;
  result.batch_size = outcome.batch_size;
  result.timings = {outcome.queue_seconds, request.preprocess_seconds, outcome.inference_seconds,
                    outcome.postprocess_seconds};
  result.inference_memory_bytes = outcome.inference_memory_bytes;
  result.image_width = request.width;
  result.image_height = request.height;
  return result;
}

void RequestPipeline::Finish(const RequestPtr& request, absl::StatusOr<DetectResult> result) {
  Record(*request, result);
  try {
    request->respond(std::move(result));
  } catch (const std::exception& e) {
    spdlog::critical("answering request '{}' threw: {}", Echo(request->input.request_id), e.what());
  } catch (...) {
    spdlog::critical("answering request '{}' threw", Echo(request->input.request_id));
  }
}

void RequestPipeline::Record(const Request& request, const absl::StatusOr<DetectResult>& result) {
  const double seconds = SecondsSince(request.start);
  if (result.ok()) {
    auto& metrics = request.route.primary->metrics();
    metrics.RecordRequest(absl::StatusCode::kOk, seconds);
    metrics.RecordStage(ModelMetrics::Stage::kQueue, result->timings.queue);
    metrics.RecordStage(ModelMetrics::Stage::kPreprocess, result->timings.preprocess);
    metrics.RecordStage(ModelMetrics::Stage::kInference, result->timings.inference);
    metrics.RecordStage(ModelMetrics::Stage::kPostprocess, result->timings.postprocess);
    metrics.RecordInferenceMemory(static_cast<double>(result->inference_memory_bytes));
    return;
  }
  const auto code = result.status().code();
  // Label values come only from configured names: a client's made-up model
  // name counts as "unknown", a request that names none as "none".
  if (request.route.primary != nullptr) {
    request.route.primary->metrics().RecordRequest(code, seconds);
  } else {
    const auto& name = request.input.model;
    const auto models = request.models ? request.models : this->models();
    const std::string label = name.empty() ? "none" : (models && models->Knows(name)) ? name : "unknown";
    metrics_.ForModel(label, "none").RecordRequest(code, seconds);
  }
  std::uint64_t suppressed = 0;
  if (failure_log_.Allow(suppressed)) {
    spdlog::warn("request '{}' failed: {} {}{}", Echo(request.input.request_id), StatusCodeName(code),
                 std::string(result.status().message()),
                 suppressed ? " (" + std::to_string(suppressed) + " more failures not logged)" : std::string());
  }
}

}  // namespace detr::service
