#include "server/service/observability/metrics.h"

#include <prometheus/metric_family.h>

#include "server/service/memory/memory_budget.h"
#include "server/service/status_mapping.h"

namespace detr::service {
namespace {

using prometheus::Histogram;

// Latency buckets from 1 ms to 60 s: resolve milliseconds at the fast end
// (a small model's forward pass) and seconds at the slow end (R50 on a CPU).
const Histogram::BucketBoundaries& LatencyBuckets() {
  static const Histogram::BucketBoundaries buckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075,
                                                      0.1,   0.15,   0.25,  0.35, 0.5,   0.75, 1.0,
                                                      1.5,   2.5,    5.0,   10.0, 20.0,  30.0, 60.0};
  return buckets;
}

const Histogram::BucketBoundaries& BatchBuckets() {
  static const Histogram::BucketBoundaries buckets = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64};
  return buckets;
}

const Histogram::BucketBoundaries& MemoryBuckets() {
  static const Histogram::BucketBoundaries buckets = [] {
    Histogram::BucketBoundaries bounds;
    for (double b = 1 << 20; b <= 16.0 * (1ull << 30); b *= 2) bounds.push_back(b);  // 1 MiB .. 16 GiB
    return bounds;
  }();
  return buckets;
}

const Histogram::BucketBoundaries& AgreementBuckets() {
  static const Histogram::BucketBoundaries buckets = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0};
  return buckets;
}

const char* StageName(ModelMetrics::Stage stage) {
  switch (stage) {
    case ModelMetrics::Stage::kQueue: return "queue";
    case ModelMetrics::Stage::kPreprocess: return "preprocess";
    case ModelMetrics::Stage::kInference: return "inference";
    case ModelMetrics::Stage::kPostprocess: return "postprocess";
  }
  return "?";
}

// process_resident_memory_bytes, read from /proc at each scrape.
class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily family;
    family.name = "process_resident_memory_bytes";
    family.help = "Resident memory size in bytes.";
    family.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric metric;
    metric.gauge.value = static_cast<double>(ResidentBytes());
    family.metric.push_back(metric);
    return {family};
  }
};

}  // namespace

// detr_allocator_*_bytes, read from the source at each scrape.
class AllocatorCollector : public prometheus::Collectable {
 public:
  void SetSource(std::function<AllocatorFigures()> source) {
    std::lock_guard<std::mutex> lock(mutex_);
    source_ = std::move(source);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::function<AllocatorFigures()> source;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      source = source_;
    }
    if (!source) return {};
    const auto figures = source();
    return {
        Gauge("detr_allocator_allocated_bytes",
              "Bytes the model core's tensors hold now: activations of running passes, weights, plans.",
              figures.allocated_bytes),
        Gauge("detr_allocator_cached_bytes", "Bytes of freed tensor memory the model core's allocator keeps for reuse.",
              figures.cached_bytes),
        Gauge("detr_allocator_cache_limit_bytes",
              "The most freed bytes the allocator keeps (sized from the memory budget).", figures.cache_limit_bytes),
        Gauge("detr_malloc_in_use_bytes",
              "Bytes of malloc's blocks in use: request buffers, decoded images, model inputs, small tensors.",
              figures.malloc_in_use_bytes),
        Gauge("detr_malloc_free_bytes", "Freed bytes malloc keeps mapped for reuse (not returned to the system).",
              figures.malloc_free_bytes)};
  }

 private:
  static prometheus::MetricFamily Gauge(const char* name, const char* help, double value) {
    prometheus::MetricFamily family;
    family.name = name;
    family.help = help;
    family.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric metric;
    metric.gauge.value = value;
    family.metric.push_back(metric);
    return family;
  }

  mutable std::mutex mutex_;
  std::function<AllocatorFigures()> source_;  // guarded by mutex_
};

ModelMetrics::ModelMetrics(Metrics& metrics, std::string model, std::string attention)
    : metrics_(metrics), model_(std::move(model)), attention_(std::move(attention)) {
  for (auto stage : {Stage::kQueue, Stage::kPreprocess, Stage::kInference, Stage::kPostprocess}) {
    stages_[static_cast<int>(stage)] =
        &metrics.stage_duration_.Add({{"model", model_}, {"stage", StageName(stage)}}, LatencyBuckets());
  }
  batch_size_ = &metrics.batch_size_.Add({{"model", model_}}, BatchBuckets());
  inference_memory_ = &metrics.inference_memory_.Add({{"model", model_}}, MemoryBuckets());
  queue_depth_ = &metrics.queue_depth_.Add({{"model", model_}});
  weight_bytes_ = &metrics.model_weight_bytes_.Add({{"model", model_}});
  plan_bytes_ = &metrics.model_plan_bytes_.Add({{"model", model_}});
  plans_ = &metrics.model_plans_.Add({{"model", model_}});
  // The OK series exist from the start, so that rate() sees the first requests.
  durations_[0] =
      &metrics.request_duration_.Add({{"model", model_}, {"attention", attention_}, {"code", "OK"}}, LatencyBuckets());
  counts_[0] = &metrics.requests_total_.Add({{"model", model_}, {"code", "OK"}});
}

void ModelMetrics::RecordRequest(absl::StatusCode code, double seconds) {
  const int index = static_cast<int>(code) >= 0 && static_cast<int>(code) < kCodes
                        ? static_cast<int>(code)
                        : static_cast<int>(absl::StatusCode::kUnknown);
  prometheus::Histogram* duration;
  prometheus::Counter* count;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (durations_[index] == nullptr) {
      const std::string name = StatusCodeName(static_cast<absl::StatusCode>(index));
      durations_[index] = &metrics_.request_duration_.Add(
          {{"model", model_}, {"attention", attention_}, {"code", name}}, LatencyBuckets());
      counts_[index] = &metrics_.requests_total_.Add({{"model", model_}, {"code", name}});
    }
    duration = durations_[index];
    count = counts_[index];
  }
  duration->Observe(seconds);
  count->Increment();
}

void ModelMetrics::SetModelMemory(const core::ModelMemory& memory) {
  weight_bytes_->Set(static_cast<double>(memory.weight_bytes));
  plan_bytes_->Set(static_cast<double>(memory.plan_bytes));
  plans_->Set(memory.plans);
}

double ModelMetrics::RecordedRequests(absl::StatusCode code) {
  const int index = static_cast<int>(code);
  std::lock_guard<std::mutex> lock(mutex_);
  return index >= 0 && index < kCodes && counts_[index] != nullptr ? counts_[index]->Value() : 0;
}

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      request_duration_(prometheus::BuildHistogram()
                            .Name("detr_request_duration_seconds")
                            .Help("Time from receiving a detection request to answering it, by model, attention and "
                                  "status code.")
                            .Register(*registry_)),
      requests_total_(prometheus::BuildCounter()
                          .Name("detr_requests_total")
                          .Help("Detection requests answered, by model and status code.")
                          .Register(*registry_)),
      stage_duration_(prometheus::BuildHistogram()
                          .Name("detr_stage_duration_seconds")
                          .Help("Server-side time per request stage: queue, preprocess, inference, postprocess.")
                          .Register(*registry_)),
      batch_size_(
          prometheus::BuildHistogram().Name("detr_batch_size").Help("Requests per forward pass.").Register(*registry_)),
      inference_memory_(prometheus::BuildHistogram()
                            .Name("detr_inference_memory_bytes")
                            .Help("Peak bytes allocated by the forward pass that served a request, divided by its "
                                  "batch size.")
                            .Register(*registry_)),
      queue_depth_(prometheus::BuildGauge()
                       .Name("detr_queue_depth")
                       .Help("Requests waiting in a model's queue.")
                       .Register(*registry_)),
      shadow_agreement_(prometheus::BuildHistogram()
                            .Name("detr_shadow_agreement")
                            .Help("How far a shadow model's detections agree with the primary's (F1 of matches at "
                                  "IoU 0.5, same class).")
                            .Register(*registry_)),
      model_info_(prometheus::BuildGauge()
                      .Name("detr_model_info")
                      .Help("Always 1; labels give each model's attention type per site, its backbone's precision "
                            "and whether its weights are random.")
                      .Register(*registry_)),
      model_parameters_(prometheus::BuildGauge()
                            .Name("detr_model_parameters")
                            .Help("Parameter count of each model.")
                            .Register(*registry_)),
      model_weight_bytes_(prometheus::BuildGauge()
                              .Name("detr_model_weight_bytes")
                              .Help("Bytes of a model's weights: parameters, buffers and the backbone engine's copy.")
                              .Register(*registry_)),
      model_plan_bytes_(prometheus::BuildGauge()
                            .Name("detr_model_plan_bytes")
                            .Help("Bytes of a model's backbone weights reordered for its plans (per input shape).")
                            .Register(*registry_)),
      model_plans_(prometheus::BuildGauge()
                       .Name("detr_model_plans")
                       .Help("Backbone plans a model keeps (one per input shape and batch chunk).")
                       .Register(*registry_)),
      memory_limit_bytes_(prometheus::BuildGauge()
                              .Name("detr_memory_limit_bytes")
                              .Help("The memory limit the server budgets against (config or cgroup); 0 = none.")
                              .Register(*registry_)),
      memory_budget_bytes_(prometheus::BuildGauge()
                               .Name("detr_memory_budget_bytes")
                               .Help("The memory budget by part, sized at start and on reload.")
                               .Register(*registry_)),
      cache_shrinks_(&prometheus::BuildCounter()
                          .Name("detr_memory_cache_shrinks_total")
                          .Help("Times resident memory neared the limit and the server emptied its caches.")
                          .Register(*registry_)
                          .Add({})),
      process_collector_(std::make_shared<ProcessCollector>()),
      allocator_collector_(std::make_shared<AllocatorCollector>()) {}

ModelMetrics& Metrics::ForModel(const std::string& model, const std::string& attention) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& entry = models_[model];
  if (!entry) entry = std::make_unique<ModelMetrics>(*this, model, attention);
  return *entry;
}

prometheus::Histogram& Metrics::ShadowAgreement(const std::string& experiment) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& entry = shadow_agreements_[experiment];
  if (entry == nullptr) entry = &shadow_agreement_.Add({{"experiment", experiment}}, AgreementBuckets());
  return *entry;
}

void Metrics::SetModelInfo(const std::string& model, const ModelDescription& description) {
  model_info_
      .Add({{"model", model},
            {"encoder_self", description.encoder_self},
            {"decoder_self", description.decoder_self},
            {"decoder_cross", description.decoder_cross},
            {"precision", description.precision},
            {"random_weights", description.random_weights ? "true" : "false"}})
      .Set(1);
  model_parameters_.Add({{"model", model}}).Set(description.parameters);
}

void Metrics::SetAllocatorSource(std::function<AllocatorFigures()> source) {
  allocator_collector_->SetSource(std::move(source));
}

void Metrics::SetMemoryBudget(double limit_bytes, const std::vector<std::pair<std::string, double>>& parts) {
  memory_limit_bytes_.Add({}).Set(limit_bytes);
  for (const auto& [part, bytes] : parts) memory_budget_bytes_.Add({{"part", part}}).Set(bytes);
}

std::vector<std::shared_ptr<prometheus::Collectable>> Metrics::Collectables() const {
  return {registry_, process_collector_, allocator_collector_};
}

}  // namespace detr::service
