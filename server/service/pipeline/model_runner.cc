#include "server/service/pipeline/model_runner.h"

#include <algorithm>
#include <exception>

#include <spdlog/spdlog.h>

namespace detr::service {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

long long Milliseconds(Clock::duration d) {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

// The call's deadline on the steady clock (the batcher's), or none. A
// deadline a day or more away counts as none: clients choose it, and one
// centuries away would overflow the clock's arithmetic.
Clock::time_point SteadyDeadline(const CallState* call) {
  if (call == nullptr) return Clock::time_point::max();
  const auto now = std::chrono::system_clock::now();
  if (call->deadline() >= now + std::chrono::hours(24)) return Clock::time_point::max();
  if (call->deadline() <= now) return Clock::now();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(call->deadline() - now);
}

AttentionTypes AttentionOf(const core::ModelConfig& config) {
  return {core::ToString(config.encoder_self.type), core::ToString(config.decoder_self.type),
          core::ToString(config.decoder_cross.type)};
}

std::string AttentionLabel(const AttentionTypes& a) {
  if (a.encoder_self == a.decoder_self && a.decoder_self == a.decoder_cross) return a.encoder_self;
  return "encoder.self=" + a.encoder_self + ",decoder.self=" + a.decoder_self + ",decoder.cross=" + a.decoder_cross;
}

}  // namespace

ModelRunner::ModelRunner(const ModelEntry& entry, std::unique_ptr<core::Detector> detector, Metrics& metrics)
    : entry_(entry),
      detector_(std::move(detector)),
      attention_(AttentionOf(entry.config)),
      attention_label_(AttentionLabel(attention_)),
      metrics_(metrics.ForModel(entry.name, attention_label_)) {
  const auto& info = detector_->info();
  metrics.SetModelInfo(entry.name, {attention_.encoder_self, attention_.decoder_self, attention_.decoder_cross,
                                    info.precision, static_cast<double>(info.parameter_count), info.random_weights});
  metrics_.SetQueueDepth(0);
  WarmUp();
  metrics_.SetModelMemory(detector_->memory());

  DynamicBatcher<Job>::Options options;
  options.max_batch_size = static_cast<std::size_t>(entry.batching.max_batch_size);
  options.max_queue_delay = entry.batching.max_queue_delay;
  options.queue_capacity = static_cast<std::size_t>(entry.batching.queue_capacity);
  options.workers = entry.batching.workers;
  DynamicBatcher<Job>::Hooks hooks;
  hooks.shape_key = [](const Job& job) { return job.job.image.ShapeKey(); };
  hooks.abandoned = [](const Job& job) { return job.job.call && job.job.call->abandoned(); };
  hooks.drop = [this](Job&& job) {
    job.job.done(job.job.call->Check(("while queued for model '" + entry_.name + "', before compute").c_str()));
  };
  hooks.run = [this](std::vector<Job>&& jobs) { RunBatch(std::move(jobs)); };
  hooks.uncaught = [this](const std::string& what) {
    spdlog::critical("model {}: a batch's completion threw: {}", entry_.name, what);
  };
  batcher_ = std::make_unique<DynamicBatcher<Job>>(options, std::move(hooks));
}

ModelRunner::~ModelRunner() { Stop(); }

void ModelRunner::WarmUp() {
  const auto shapes = entry_.preprocessing.InputShapes();
  if (shapes.empty()) return;  // inputs take each image's size: nothing to plan ahead
  const int max_batch = entry_.batching.max_batch_size;
  auto batches = core::BatchChunksUpTo(max_batch);
  // A batch of max_batch_size runs the transformer on all its images at once:
  // its pass is the largest, whatever chunks the backbone runs it in.
  if (batches.back() != max_batch) batches.push_back(max_batch);
  const auto start = Clock::now();
  for (const auto& shape : shapes) {
    core::PreparedImage blank;
    blank.height = shape.height;
    blank.width = shape.width;
    blank.pixels.assign(static_cast<std::size_t>(3) * shape.height * shape.width, 0.0f);
    blank.original_height = shape.height;
    blank.original_width = shape.width;
    for (const int batch : batches) {
      const std::vector<const core::PreparedImage*> images(static_cast<std::size_t>(batch), &blank);
      const auto pass = detector_->Detect(images, std::vector<core::DetectOptions>(images.size()));
      pass_peak_bytes_ = std::max<std::uint64_t>(pass_peak_bytes_, pass.peak_bytes);
    }
  }
  const auto held = detector_->memory();
  spdlog::info(
      "model '{}': warmed up {} input shape(s) x batch sizes of up to {} in {:.1f} s: {} backbone plan(s) holding {} "
      "MB of reordered weights; largest pass {} MB",
      entry_.name, shapes.size(), max_batch, Seconds(start, Clock::now()), held.plans, held.plan_bytes >> 20,
      pass_peak_bytes_ >> 20);
}

void ModelRunner::Stop() {
  if (batcher_) batcher_->Stop();
}

void ModelRunner::Submit(InferenceJob job) {
  Job queued{std::move(job), Clock::now()};
  const auto deadline = SteadyDeadline(queued.job.call.get());
  const auto admitted = batcher_->TryEnqueue(queued, deadline);
  metrics_.SetQueueDepth(static_cast<double>(batcher_->depth()));  // it may also have shed abandoned work
  switch (admitted) {
    case DynamicBatcher<Job>::Admitted::kQueued: return;
    case DynamicBatcher<Job>::Admitted::kFull:
      return queued.job.done(absl::ResourceExhaustedError("model '" + entry_.name + "' has " +
                                                          std::to_string(entry_.batching.queue_capacity) +
                                                          " requests queued (its capacity); retry later"));
    case DynamicBatcher<Job>::Admitted::kLate:
      return queued.job.done(absl::ResourceExhaustedError(
          "model '" + entry_.name + "' is loaded: its queue would take about " +
          std::to_string(Milliseconds(batcher_->ExpectedWait())) + " ms, and the request's deadline is " +
          std::to_string(Milliseconds(deadline - Clock::now())) + " ms away; retry later or with a longer deadline"));
    case DynamicBatcher<Job>::Admitted::kStopped:
      return queued.job.done(absl::UnavailableError("model '" + entry_.name + "' has stopped"));
  }
}

absl::StatusOr<core::DetectionPass> ModelRunner::Detect(const std::vector<Job>& jobs) {
  std::vector<const core::PreparedImage*> images;
  std::vector<core::DetectOptions> options;
  for (const auto& job : jobs) {
    images.push_back(&job.job.image);
    options.push_back(job.job.options);
  }
  try {
    return detector_->Detect(images, options);
  } catch (const std::exception& e) {
    spdlog::error("model {}: a batch of {} failed: {}", entry_.name, jobs.size(), e.what());
    return absl::InternalError("model '" + entry_.name + "' failed: " + e.what());
  } catch (...) {
    return absl::InternalError("model '" + entry_.name + "' failed");
  }
}

void ModelRunner::RunBatch(std::vector<Job>&& jobs) {
  const auto start = Clock::now();
  metrics_.SetQueueDepth(static_cast<double>(batcher_->depth()));
  const auto batch = static_cast<int>(jobs.size());
  metrics_.RecordBatch(batch);
  auto pass = Detect(jobs);
  if (!pass.ok()) {
    for (auto& job : jobs) job.job.done(pass.status());
    return;
  }
  statistics_.RecordExecution(batch, pass->inference_seconds, pass->postprocess_seconds);
  for (int i = 0; i < batch; ++i) {
    auto& job = jobs[static_cast<std::size_t>(i)];
    InferenceOutcome outcome;
    outcome.detections = std::move(pass->detections[static_cast<std::size_t>(i)]);
    outcome.batch_size = batch;
    outcome.queue_seconds = Seconds(job.enqueued, start);
    outcome.inference_seconds = pass->inference_seconds;
    outcome.postprocess_seconds = pass->postprocess_seconds;
    outcome.inference_memory_bytes = pass->peak_bytes / static_cast<std::uint64_t>(batch);
    job.job.done(std::move(outcome));
  }
  // After the answers: a pass at an input shape not seen before planned it.
  metrics_.SetModelMemory(detector_->memory());
}

}  // namespace detr::service
