// One hosted model: the network, its dynamic batcher and its workers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "server/core/detection.h"
#include "server/core/detr.h"
#include "server/service/dynamic_batcher.h"
#include "server/service/metrics.h"
#include "server/service/request_error.h"
#include "server/service/server_config.h"

namespace detr {

/// An image ready for the model: (3, H, W) pixels and (H, W) padding mask,
/// plus the original size the boxes are scaled back to.
struct PreparedImage {
  at::Tensor pixels;
  at::Tensor mask;
  int original_height = 0;
  int original_width = 0;
};

struct DetectOptions {
  float score_threshold = 0;
  int max_detections = 0;        // 0 = all
  std::vector<int> class_ids;    // empty = all
};

struct InferenceOutcome {
  bool ok = false;
  RequestError error{ErrorKind::kInternal, ""};
  Detections detections;
  int batch_size = 0;
  double queue_seconds = 0, inference_seconds = 0, postprocess_seconds = 0;
  std::uint64_t inference_memory_bytes = 0;
};

class ModelRunner {
 public:
  using Completion = std::function<void(InferenceOutcome)>;

  /// Builds the model (weights or seeded random) and starts its workers.
  /// Throws with a message naming the model and the problem.
  ModelRunner(const ModelEntry& entry, Metrics& metrics);
  ~ModelRunner();
  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  /// Queues an image. `done` is called exactly once, on a worker thread (or
  /// at once, when the queue is full). `abandoned` is asked just before
  /// compute: true drops the request (cancelled or past its deadline).
  void Submit(PreparedImage image, DetectOptions options, std::function<bool()> abandoned, Completion done);

  /// Stops accepting work, finishes what is queued, joins the workers.
  void Stop();

  const ModelEntry& entry() const { return entry_; }
  const std::string& name() const { return entry_.name; }
  /// One label value for the attention of all sites: the type when all
  /// sites agree, else "encoder.self=...,decoder.self=...,decoder.cross=...".
  const std::string& attention_label() const { return attention_label_; }
  int64_t parameter_count() const { return parameter_count_; }
  bool random_weights() const { return random_weights_; }
  std::size_t queue_depth() const { return batcher_->depth(); }

 private:
  struct Job {
    PreparedImage image;
    DetectOptions options;
    std::function<bool()> abandoned;
    Completion done;
    std::chrono::steady_clock::time_point enqueued;
  };

  void RunBatch(std::vector<Job>&& jobs);
  void Fail(std::vector<Job>& jobs, const RequestError& error);

  ModelEntry entry_;
  Metrics& metrics_;
  Detr model_{nullptr};
  std::string attention_label_;
  std::vector<std::string> class_names_;  // by class id, from the model config
  int64_t parameter_count_ = 0;
  bool random_weights_ = false;
  std::unique_ptr<DynamicBatcher<Job>> batcher_;
};

}  // namespace detr
