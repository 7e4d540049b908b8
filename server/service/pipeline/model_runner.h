// One hosted model: its Detector, its dynamic batcher and the workers that
// run batches through it. No LibTorch here: the Detector interface takes
// plain prepared images (core/api/detector.h), so the runner is tested with a
// fake one.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <absl/status/statusor.h>

#include "server/core/api/detector.h"
#include "server/service/config/server_config.h"
#include "server/service/observability/metrics.h"
#include "server/service/pipeline/call_state.h"
#include "server/service/pipeline/dynamic_batcher.h"
#include "server/service/pipeline/inference_statistics.h"
#include "server/service/pipeline/request.h"

namespace detr::service {

/// One image's share of a forward pass.
struct InferenceOutcome {
  Detections detections;
  int batch_size = 0;
  double queue_seconds = 0, inference_seconds = 0, postprocess_seconds = 0;
  std::uint64_t inference_memory_bytes = 0;  ///< the pass's peak bytes / batch size
};

struct InferenceJob {
  core::PreparedImage image;
  core::DetectOptions options;
  /// Asked just before compute: a cancelled or expired call's job is dropped.
  /// Null: nobody cancels it (a shadow arm).
  std::shared_ptr<const CallState> call;
  /// Called exactly once, on a worker thread or (when the job is refused) at
  /// once on the caller's; must not throw.
  std::function<void(absl::StatusOr<InferenceOutcome>)> done;
};

class ModelRunner {
 public:
  /// Warms `detector` up where the model's input shapes are a fixed set
  /// (preprocessing canvas or canvases): one pass per shape and batch chunk,
  /// so that every backbone plan exists before the first request. Then
  /// starts the workers of `entry`'s batching settings. Throws what the
  /// detector throws.
  ModelRunner(const ModelEntry& entry, std::unique_ptr<core::Detector> detector, Metrics& metrics);
  ~ModelRunner();
  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  /// Queues a job: RESOURCE_EXHAUSTED at once when the queue is at capacity
  /// or would outlast the call's deadline, UNAVAILABLE when the runner has
  /// stopped.
  void Submit(InferenceJob job);

  /// Stops accepting work, finishes what is queued, joins the workers.
  void Stop();

  const ModelEntry& entry() const { return entry_; }
  const std::string& name() const { return entry_.name; }
  const core::DetectorInfo& info() const { return detector_->info(); }
  const AttentionTypes& attention() const { return attention_; }
  /// One label value for the attention of all sites: the type when all
  /// sites agree, else "encoder.self=...,decoder.self=...,decoder.cross=...".
  const std::string& attention_label() const { return attention_label_; }
  ModelMetrics& metrics() const { return metrics_; }
  /// Every request this model answered (directly or as an experiment's arm)
  /// and every pass it ran, for the protocol's statistics.
  InferenceStatistics& statistics() const { return statistics_; }
  std::size_t queue_depth() const { return batcher_->depth(); }
  /// The largest forward pass's peak bytes seen at warm-up (a batch of
  /// max_batch_size on the largest input shape); 0 without a warm-up.
  std::uint64_t pass_peak_bytes() const { return pass_peak_bytes_; }
  /// What the model holds between passes, as its detector reports it now.
  core::ModelMemory memory() const { return detector_->memory(); }

 private:
  struct Job {
    InferenceJob job;
    std::chrono::steady_clock::time_point enqueued;
  };

  void WarmUp();
  void RunBatch(std::vector<Job>&& jobs);
  absl::StatusOr<core::DetectionPass> Detect(const std::vector<Job>& jobs);

  ModelEntry entry_;
  std::unique_ptr<core::Detector> detector_;
  AttentionTypes attention_;
  std::string attention_label_;
  ModelMetrics& metrics_;
  mutable InferenceStatistics statistics_;
  std::uint64_t pass_peak_bytes_ = 0;
  std::unique_ptr<DynamicBatcher<Job>> batcher_;  // last: its workers use everything above
};

}  // namespace detr::service
