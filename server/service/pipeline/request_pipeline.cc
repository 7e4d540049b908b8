#include "server/service/pipeline/request_pipeline.h"

#include <cmath>
#include <mutex>
#include <optional>

#include <opencv2/core/mat.hpp>
#include <spdlog/spdlog.h>

#include "server/service/pipeline/client_text.h"
#include "server/service/pipeline/last_resort.h"
#include "server/service/pipeline/request_image.h"
#include "server/service/status_mapping.h"
#include "server/types/detection_agreement.h"

namespace detr::service {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

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
  if (auto status = ValidateDetectInput(request->input, options_.max_pixels); !status.ok()) {
    return Finish(request, status);
  }
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

void RequestPipeline::Refuse(DetectInput input, absl::Status error, Respond respond) {
  auto request = std::make_shared<Request>();
  request->input = std::move(input);
  request->call = std::make_shared<CallState>();
  request->respond = std::move(respond);
  Finish(request, std::move(error));
}

void RequestPipeline::Preprocess(const RequestPtr& request) {
  if (auto status = request->call->Check("before preprocessing"); !status.ok()) return Finish(request, status);
  const auto start = Clock::now();
  absl::StatusOr<cv::Mat> rgb;
  core::PreparedImage image;
  auto status = LastResort("preprocessing", [&] {
    rgb = DecodeRequestImage(request->input.image, options_.max_pixels);
    if (rgb.ok()) image = PrepareFor(*rgb, request->route.primary->entry().preprocessing);
  });
  if (status.ok()) status = rgb.status();
  // The encoded bytes are no longer needed: free them, and the admission
  // place they held, before the request waits in a model's queue.
  std::string().swap(request->input.image.bytes);
  request->admission.Release();
  if (!status.ok()) return Finish(request, status);
  request->preprocess_seconds = SecondsSince(start);
  request->width = rgb->cols;
  request->height = rgb->rows;
  if (request->route.shadow) SubmitShadow(request, *rgb);

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
  auto status = LastResort("the shadow arm", [&] { job.image = PrepareFor(rgb, shadow.entry().preprocessing); });
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
  auto status = LastResort("post-processing", [&] { result = ResultOf(*request, std::move(*outcome)); });
  if (!status.ok()) return Finish(request, status);
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
  auto* experiment = request.models && !request.route.experiment.empty()
                         ? request.models->ExperimentStatistics(request.route.experiment)
                         : nullptr;
  if (result.ok()) {
    auto& metrics = request.route.primary->metrics();
    metrics.RecordRequest(absl::StatusCode::kOk, seconds);
    metrics.RecordStage(ModelMetrics::Stage::kQueue, result->timings.queue);
    metrics.RecordStage(ModelMetrics::Stage::kPreprocess, result->timings.preprocess);
    metrics.RecordStage(ModelMetrics::Stage::kInference, result->timings.inference);
    metrics.RecordStage(ModelMetrics::Stage::kPostprocess, result->timings.postprocess);
    metrics.RecordInferenceMemory(static_cast<double>(result->inference_memory_bytes));
    const auto& t = result->timings;
    request.route.primary->statistics().RecordSuccess(seconds, t.queue, t.preprocess, t.inference, t.postprocess);
    if (experiment) {
      experiment->RecordSuccess(seconds, t.queue, t.preprocess, t.inference, t.postprocess);
      experiment->RecordShareOfExecution(result->batch_size);
    }
    return;
  }
  const auto code = result.status().code();
  if (request.route.primary != nullptr) request.route.primary->statistics().RecordFailure(seconds);
  if (experiment) experiment->RecordFailure(seconds);
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
