// Cumulative counts and durations of one model's (or experiment's) requests,
// as Triton's statistics extension reports them: perf_analyzer reads them
// before and after each measurement window and prints the server's share of
// the latency (queue, compute input, infer, output) from the difference.
//
// Prometheus has the same facts as histograms; these are the exact totals a
// client can difference, kept apart so that the protocol front ends read
// them without going through the metrics registry.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>

namespace detr::service {

/// A count of events and their total duration.
struct DurationTotal {
  std::uint64_t count = 0;
  std::uint64_t ns = 0;
  void Add(double seconds);
};

struct StatisticsSnapshot {
  std::uint64_t last_inference_ms = 0;  ///< since the epoch; 0: none yet
  std::uint64_t inference_count = 0;    ///< images through a forward pass
  std::uint64_t execution_count = 0;    ///< forward passes (batches)
  DurationTotal success, fail, queue, compute_input, compute_infer, compute_output;
  struct Batch {
    DurationTotal compute_infer, compute_output;
  };
  std::map<int, Batch> batches;  ///< by batch size
};

class InferenceStatistics {
 public:
  /// A request answered with detections; the stages' seconds as its result
  /// reports them, `total` from arrival to answer.
  void RecordSuccess(double total, double queue, double preprocess, double inference, double postprocess);
  /// A request answered with an error.
  void RecordFailure(double total);
  /// One forward pass of `batch_size` images (recorded by the model's runner).
  void RecordExecution(int batch_size, double inference, double postprocess);
  /// A request's share of a pass it did not see run: an experiment's, whose
  /// arms' runners count the passes. Its executions are the sum of
  /// 1 / batch size over its requests, rounded.
  void RecordShareOfExecution(int batch_size);

  StatisticsSnapshot Snapshot() const;

 private:
  mutable std::mutex mutex_;
  StatisticsSnapshot totals_;
  double execution_shares_ = 0;  // RecordShareOfExecution's sum
};

}  // namespace detr::service
