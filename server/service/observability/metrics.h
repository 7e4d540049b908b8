// The service's Prometheus metrics: built once at start-up and handed to
// whoever records. Names follow Prometheus conventions: detr_ prefix, base
// units, _total for counters, few labels. Every series a model records into
// is created once and kept (ModelMetrics), so recording is no label lookup;
// label values come only from configured names and fixed values, never from
// a client's strings.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <absl/status/status.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "server/core/api/model_memory.h"

namespace detr::service {

class Metrics;
class AllocatorCollector;

/// One model's series (or one fixed label's: an experiment's, "none",
/// "unknown"), under the model's attention label.
class ModelMetrics {
 public:
  enum class Stage { kQueue, kPreprocess, kInference, kPostprocess };

  void RecordRequest(absl::StatusCode code, double seconds);
  void RecordStage(Stage stage, double seconds) { stages_[static_cast<int>(stage)]->Observe(seconds); }
  void RecordBatch(int batch_size) { batch_size_->Observe(batch_size); }
  void RecordInferenceMemory(double bytes) { inference_memory_->Observe(bytes); }
  void SetQueueDepth(double depth) { queue_depth_->Set(depth); }
  /// What the model holds between passes: weights, plans and their bytes.
  void SetModelMemory(const core::ModelMemory& memory);
  /// How many requests were recorded with `code` (for tests and logs).
  double RecordedRequests(absl::StatusCode code);

  /// Made by Metrics::ForModel, which keeps one per model.
  ModelMetrics(Metrics& metrics, std::string model, std::string attention);

 private:
  static constexpr int kCodes = 17;  // the canonical status codes
  Metrics& metrics_;
  const std::string model_, attention_;
  std::mutex mutex_;
  std::array<prometheus::Histogram*, kCodes> durations_{};  // by code, made on first use; guarded by mutex_
  std::array<prometheus::Counter*, kCodes> counts_{};       // guarded by mutex_
  std::array<prometheus::Histogram*, 4> stages_{};
  prometheus::Histogram* batch_size_ = nullptr;
  prometheus::Histogram* inference_memory_ = nullptr;
  prometheus::Gauge* queue_depth_ = nullptr;
  prometheus::Gauge* weight_bytes_ = nullptr;
  prometheus::Gauge* plan_bytes_ = nullptr;
  prometheus::Gauge* plans_ = nullptr;
};

/// The model core's allocator, and malloc's, as the metrics read them at
/// each scrape (the service links no LibTorch: detr-server's main wires it).
struct AllocatorFigures {
  double allocated_bytes = 0;      ///< in use by tensors (activations, weights, plans)
  double cached_bytes = 0;         ///< freed, kept for reuse
  double cache_limit_bytes = 0;    ///< the most it keeps cached
  double malloc_in_use_bytes = 0;  ///< malloc's blocks in use: request buffers, images, inputs, small tensors
  double malloc_free_bytes = 0;    ///< freed blocks malloc keeps from the system
};

class Metrics {
 public:
  /// Registers every family. Serves nothing: see observability/metrics_endpoint.h.
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  /// The series of `model`, created at zero on first use (so that rate()
  /// sees a model's first requests), labelled with `attention`.
  ModelMetrics& ForModel(const std::string& model, const std::string& attention);
  /// How far a shadow experiment's arms agree: one observation per request
  /// both arms answered. Created at zero on first use.
  prometheus::Histogram& ShadowAgreement(const std::string& experiment);
  /// What detr_model_info's labels and detr_model_parameters say of a model.
  struct ModelDescription {
    std::string encoder_self, decoder_self, decoder_cross;  // attention type per site
    std::string precision;                                  // float32 or int8
    double parameters = 0;
    bool random_weights = false;
  };
  /// detr_model_info (value 1; labels name each site's attention, the
  /// precision and whether the weights are random) and detr_model_parameters.
  void SetModelInfo(const std::string& model, const ModelDescription& description);

  /// Where detr_allocator_*_bytes come from (read at each scrape); unset:
  /// those series are absent.
  void SetAllocatorSource(std::function<AllocatorFigures()> source);
  /// detr_memory_limit_bytes (0: none) and detr_memory_budget_bytes{part}.
  void SetMemoryBudget(double limit_bytes, const std::vector<std::pair<std::string, double>>& parts);
  /// detr_memory_cache_shrinks_total: resident memory neared the limit and
  /// the caches were emptied (memory_pressure.h).
  void RecordCacheShrink() { cache_shrinks_->Increment(); }

  /// What a /metrics endpoint renders: the registry and the process's own.
  std::vector<std::shared_ptr<prometheus::Collectable>> Collectables() const;

 private:
  friend class ModelMetrics;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Counter>& requests_total_;
  prometheus::Family<prometheus::Histogram>& stage_duration_;
  prometheus::Family<prometheus::Histogram>& batch_size_;
  prometheus::Family<prometheus::Histogram>& inference_memory_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Histogram>& shadow_agreement_;
  prometheus::Family<prometheus::Gauge>& model_info_;
  prometheus::Family<prometheus::Gauge>& model_parameters_;
  prometheus::Family<prometheus::Gauge>& model_weight_bytes_;
  prometheus::Family<prometheus::Gauge>& model_plan_bytes_;
  prometheus::Family<prometheus::Gauge>& model_plans_;
  prometheus::Family<prometheus::Gauge>& memory_limit_bytes_;
  prometheus::Family<prometheus::Gauge>& memory_budget_bytes_;
  prometheus::Counter* cache_shrinks_ = nullptr;
  std::shared_ptr<prometheus::Collectable> process_collector_;
  std::shared_ptr<AllocatorCollector> allocator_collector_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<ModelMetrics>> models_;      // guarded by mutex_
  std::map<std::string, prometheus::Histogram*> shadow_agreements_;  // guarded by mutex_
};

}  // namespace detr::service
