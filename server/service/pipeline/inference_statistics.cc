#include "server/service/pipeline/inference_statistics.h"

#include <algorithm>
#include <cmath>

namespace detr::service {
namespace {

std::uint64_t NowMs() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

}  // namespace

void DurationTotal::Add(double seconds) {
  ++count;
  ns += static_cast<std::uint64_t>(std::llround(std::max(0.0, seconds) * 1e9));
}

void InferenceStatistics::RecordSuccess(double total, double queue, double preprocess, double inference,
                                        double postprocess) {
  std::lock_guard lock(mutex_);
  totals_.success.Add(total);
  totals_.queue.Add(queue);
  totals_.compute_input.Add(preprocess);
  totals_.compute_infer.Add(inference);
  totals_.compute_output.Add(postprocess);
  totals_.last_inference_ms = NowMs();
}

void InferenceStatistics::RecordFailure(double total) {
  std::lock_guard lock(mutex_);
  totals_.fail.Add(total);
}

void InferenceStatistics::RecordExecution(int batch_size, double inference, double postprocess) {
  std::lock_guard lock(mutex_);
  ++totals_.execution_count;
  totals_.inference_count += static_cast<std::uint64_t>(batch_size);
  auto& batch = totals_.batches[batch_size];
  batch.compute_infer.Add(inference);
  batch.compute_output.Add(postprocess);
}

void InferenceStatistics::RecordShareOfExecution(int batch_size) {
  std::lock_guard lock(mutex_);
  ++totals_.inference_count;
  execution_shares_ += 1.0 / std::max(1, batch_size);
  totals_.execution_count = static_cast<std::uint64_t>(std::llround(execution_shares_));
}

StatisticsSnapshot InferenceStatistics::Snapshot() const {
  std::lock_guard lock(mutex_);
  return totals_;
}

}  // namespace detr::service
