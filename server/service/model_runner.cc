#include "server/service/model_runner.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <torch/autograd.h>

#include "server/core/cpu_allocator.h"
#include "server/core/model_factory.h"
#include "server/core/postprocess.h"
#include "server/core/runtime.h"

namespace detr {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

std::string AttentionLabel(const ModelConfig& config) {
  const std::string e = ToString(config.encoder_self.type), s = ToString(config.decoder_self.type),
                    c = ToString(config.decoder_cross.type);
  if (e == s && s == c) return e;
  return "encoder.self=" + e + ",decoder.self=" + s + ",decoder.cross=" + c;
}

std::string ShapeKey(const at::Tensor& pixels) {
  return std::to_string(pixels.size(1)) + "x" + std::to_string(pixels.size(2));
}

Detections Filter(Detections detections, const DetectOptions& options) {
  if (!options.class_ids.empty()) {
    detections.erase(std::remove_if(detections.begin(), detections.end(),
                                    [&](const Detection& d) {
                                      return std::find(options.class_ids.begin(), options.class_ids.end(),
                                                       d.class_id) == options.class_ids.end();
                                    }),
                     detections.end());
  }
  if (options.max_detections > 0 && static_cast<int>(detections.size()) > options.max_detections) {
    detections.resize(options.max_detections);
  }
  return detections;
}

}  // namespace

ModelRunner::ModelRunner(const ModelEntry& entry, Metrics& metrics) : entry_(entry), metrics_(metrics) {
  auto loaded = BuildModel({entry.config, entry.weights, entry.random_seed, /*optimize=*/true});
  model_ = loaded.model;
  random_weights_ = loaded.random_weights;
  parameter_count_ = model_->parameter_count();
  attention_label_ = AttentionLabel(entry.config);
  class_names_ = entry.config.ClassNames();
  for (const auto& line : loaded.report.skipped) spdlog::info("model {}: {}", entry.name, line);
  metrics_.SetModelInfo(entry.name, ToString(entry.config.encoder_self.type), ToString(entry.config.decoder_self.type),
                        ToString(entry.config.decoder_cross.type), static_cast<double>(parameter_count_),
                        random_weights_);
  metrics_.InitializeModel(entry.name, attention_label_);

  DynamicBatcher<Job>::Options options;
  options.max_batch_size = static_cast<std::size_t>(entry.batching.max_batch_size);
  options.max_queue_delay = entry.batching.max_queue_delay;
  options.queue_capacity = static_cast<std::size_t>(entry.batching.queue_capacity);
  options.workers = entry.batching.workers;
  DynamicBatcher<Job>::Hooks hooks;
  hooks.shape_key = [](const Job& job) { return ShapeKey(job.image.pixels); };
  hooks.abandoned = [](const Job& job) { return job.abandoned && job.abandoned(); };
  hooks.drop = [this](Job&& job) {
    std::vector<Job> one;
    one.push_back(std::move(job));
    Fail(one, {ErrorKind::kDeadlineExceeded, "the request expired or was cancelled while queued for model '" +
                                                 entry_.name + "'; it was dropped before compute"});
  };
  hooks.run = [this](std::vector<Job>&& jobs) {
    RunBatch(std::move(jobs));
    // Each worker thread that ran a pass keeps an OpenMP team; with more
    // teams than cores, all of them stop spinning between parallel regions
    // and every pass pays a wake-up per region (runtime.h). Ending the team
    // after each batch costs one thread start per batch (not measurable).
    ReleaseIntraOpThreads();
  };
  batcher_ = std::make_unique<DynamicBatcher<Job>>(options, std::move(hooks));
}

ModelRunner::~ModelRunner() { Stop(); }

void ModelRunner::Stop() {
  if (batcher_) batcher_->Stop();
}

void ModelRunner::Submit(PreparedImage image, DetectOptions options, std::function<bool()> abandoned, Completion done) {
  Job job{std::move(image), std::move(options), std::move(abandoned), std::move(done), Clock::now()};
  if (!batcher_->TryEnqueue(job)) {
    InferenceOutcome outcome;
    outcome.error = {ErrorKind::kQueueFull, "model '" + entry_.name + "' has " +
                                                std::to_string(entry_.batching.queue_capacity) +
                                                " requests queued (its capacity); retry later"};
    job.done(std::move(outcome));
    return;
  }
  metrics_.SetQueueDepth(entry_.name, static_cast<double>(batcher_->depth()));
}

void ModelRunner::Fail(std::vector<Job>& jobs, const RequestError& error) {
  for (auto& job : jobs) {
    InferenceOutcome outcome;
    outcome.error = error;
    job.done(std::move(outcome));
  }
}

void ModelRunner::RunBatch(std::vector<Job>&& jobs) {
  const auto start = Clock::now();
  metrics_.SetQueueDepth(entry_.name, static_cast<double>(batcher_->depth()));
  const auto batch = static_cast<int64_t>(jobs.size());
  std::vector<at::Tensor> pixels, masks;
  std::vector<int64_t> sizes;
  for (const auto& job : jobs) {
    pixels.push_back(job.image.pixels);
    masks.push_back(job.image.mask);
    sizes.push_back(job.image.original_height);
    sizes.push_back(job.image.original_width);
  }
  DetrOutput out;
  std::size_t peak_bytes = 0;
  try {
    torch::NoGradGuard no_grad;
    MemoryScope memory;
    // A batch of one needs no copy into a new batch tensor.
    out = batch == 1 ? model_->forward(pixels[0].unsqueeze(0), masks[0].unsqueeze(0))
                     : model_->forward(at::stack(pixels), at::stack(masks));
    peak_bytes = memory.peak_bytes();
  } catch (const std::exception& e) {
    spdlog::error("model {}: forward pass of a batch of {} failed: {}", entry_.name, batch, ErrorMessage(e));
    Fail(jobs, {ErrorKind::kInternal, "model '" + entry_.name + "' failed: " + ErrorMessage(e)});
    return;
  }
  const auto inferred = Clock::now();
  auto post = PostProcess(out.logits, out.boxes, at::tensor(sizes, at::kLong).view({batch, 2}));
  const double inference_seconds = Seconds(start, inferred);
  metrics_.RecordBatch(entry_.name, static_cast<int>(batch));
  for (int64_t i = 0; i < batch; ++i) {
    auto& job = jobs[i];
    InferenceOutcome outcome;
    outcome.ok = true;
    outcome.detections = Filter(ToDetections(post, i, job.options.score_threshold, 0, class_names_), job.options);
    outcome.batch_size = static_cast<int>(batch);
    outcome.queue_seconds = Seconds(job.enqueued, start);
    outcome.inference_seconds = inference_seconds;
    outcome.postprocess_seconds = Seconds(inferred, Clock::now());  // the batch's post-processing up to this image
    outcome.inference_memory_bytes = peak_bytes / static_cast<std::size_t>(batch);
    metrics_.RecordStage(entry_.name, Metrics::Stage::kQueue, outcome.queue_seconds);
    metrics_.RecordStage(entry_.name, Metrics::Stage::kInference, outcome.inference_seconds);
    metrics_.RecordStage(entry_.name, Metrics::Stage::kPostprocess, outcome.postprocess_seconds);
    metrics_.RecordInferenceMemory(entry_.name, static_cast<double>(outcome.inference_memory_bytes));
    job.done(std::move(outcome));
  }
}

}  // namespace detr
