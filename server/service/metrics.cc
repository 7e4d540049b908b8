#include "server/service/metrics.h"

#include "server/service/metrics_http_server.h"

#include <unistd.h>

#include <fstream>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace detr {
namespace {

using prometheus::Histogram;

// Latency buckets from 1 ms to 60 s: resolve milliseconds at the fast end
// (a small model's forward pass) and seconds at the slow end (R50 on a CPU).
Histogram::BucketBoundaries LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.35, 0.5,
          0.75,  1.0,    1.5,   2.5,  5.0,   10.0, 20.0,  30.0, 60.0};
}

Histogram::BucketBoundaries BatchBuckets() { return {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64}; }

Histogram::BucketBoundaries MemoryBuckets() {
  Histogram::BucketBoundaries bounds;
  for (double b = 1 << 20; b <= 16.0 * (1ull << 30); b *= 2) bounds.push_back(b);  // 1 MiB .. 16 GiB
  return bounds;
}

Histogram::BucketBoundaries AgreementBuckets() { return {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0}; }

const char* StageName(Metrics::Stage stage) {
  switch (stage) {
    case Metrics::Stage::kQueue: return "queue";
    case Metrics::Stage::kPreprocess: return "preprocess";
    case Metrics::Stage::kInference: return "inference";
    case Metrics::Stage::kPostprocess: return "postprocess";
  }
  return "?";
}

// process_resident_memory_bytes, read from /proc at each scrape.
class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    long pages_total = 0, pages_resident = 0;
    std::ifstream("/proc/self/statm") >> pages_total >> pages_resident;
    prometheus::MetricFamily family;
    family.name = "process_resident_memory_bytes";
    family.help = "Resident memory size in bytes.";
    family.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric metric;
    metric.gauge.value = static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
    family.metric.push_back(metric);
    return {family};
  }
};

}  // namespace

Metrics::Metrics(const std::string& listen)
    : registry_(std::make_shared<prometheus::Registry>()),
      request_duration_(prometheus::BuildHistogram()
                            .Name("detr_request_duration_seconds")
                            .Help("Time from receiving a Detect request to answering it, by model, attention and gRPC code.")
                            .Register(*registry_)),
      stage_duration_(prometheus::BuildHistogram()
                          .Name("detr_stage_duration_seconds")
                          .Help("Server-side time per request stage: queue, preprocess, inference, postprocess.")
                          .Register(*registry_)),
      batch_size_(prometheus::BuildHistogram()
                      .Name("detr_batch_size")
                      .Help("Requests per forward pass.")
                      .Register(*registry_)),
      inference_memory_(prometheus::BuildHistogram()
                            .Name("detr_inference_memory_bytes")
                            .Help("Peak bytes allocated by the forward pass that served a request, divided by its batch size.")
                            .Register(*registry_)),
      queue_depth_(prometheus::BuildGauge()
                       .Name("detr_queue_depth")
                       .Help("Requests waiting in a model's queue.")
                       .Register(*registry_)),
      requests_total_(prometheus::BuildCounter()
                          .Name("detr_requests_total")
                          .Help("Detect requests answered, by model and gRPC code.")
                          .Register(*registry_)),
      shadow_agreement_(prometheus::BuildHistogram()
                            .Name("detr_shadow_agreement")
                            .Help("How far a shadow model's detections agree with the primary's (F1 of matches at IoU 0.5, same class).")
                            .Register(*registry_)),
      model_info_(prometheus::BuildGauge()
                      .Name("detr_model_info")
                      .Help("Always 1; labels give each model's attention type per site and whether its weights are random.")
                      .Register(*registry_)),
      model_parameters_(prometheus::BuildGauge()
                            .Name("detr_model_parameters")
                            .Help("Parameter count of each model.")
                            .Register(*registry_)),
      process_collector_(std::make_shared<ProcessCollector>()),
      http_(std::make_unique<MetricsHttpServer>(
          listen, std::vector<std::shared_ptr<prometheus::Collectable>>{registry_, process_collector_})) {}

Metrics::~Metrics() = default;

void Metrics::RecordRequest(const std::string& model, const std::string& attention, const std::string& code,
                            double seconds) {
  request_duration_.Add({{"model", model}, {"attention", attention}, {"code", code}}, LatencyBuckets()).Observe(seconds);
  requests_total_.Add({{"model", model}, {"code", code}}).Increment();
}

void Metrics::RecordStage(const std::string& model, Stage stage, double seconds) {
  stage_duration_.Add({{"model", model}, {"stage", StageName(stage)}}, LatencyBuckets()).Observe(seconds);
}

void Metrics::RecordBatch(const std::string& model, int batch_size) {
  batch_size_.Add({{"model", model}}, BatchBuckets()).Observe(batch_size);
}

void Metrics::RecordInferenceMemory(const std::string& model, double bytes) {
  inference_memory_.Add({{"model", model}}, MemoryBuckets()).Observe(bytes);
}

void Metrics::SetQueueDepth(const std::string& model, double depth) {
  queue_depth_.Add({{"model", model}}).Set(depth);
}

void Metrics::InitializeModel(const std::string& model, const std::string& attention) {
  request_duration_.Add({{"model", model}, {"attention", attention}, {"code", "OK"}}, LatencyBuckets());
  requests_total_.Add({{"model", model}, {"code", "OK"}});
  for (auto stage : {Stage::kQueue, Stage::kPreprocess, Stage::kInference, Stage::kPostprocess}) {
    stage_duration_.Add({{"model", model}, {"stage", StageName(stage)}}, LatencyBuckets());
  }
  batch_size_.Add({{"model", model}}, BatchBuckets());
  inference_memory_.Add({{"model", model}}, MemoryBuckets());
  queue_depth_.Add({{"model", model}}).Set(0);
}

void Metrics::InitializeExperiment(const std::string& experiment, bool shadow) {
  if (shadow) shadow_agreement_.Add({{"experiment", experiment}}, AgreementBuckets());
}

void Metrics::RecordShadowAgreement(const std::string& experiment, double agreement) {
  shadow_agreement_.Add({{"experiment", experiment}}, AgreementBuckets()).Observe(agreement);
}

void Metrics::SetModelInfo(const std::string& model, const std::string& encoder_self, const std::string& decoder_self,
                           const std::string& decoder_cross, double parameters, bool random_weights) {
  model_info_
      .Add({{"model", model},
            {"encoder_self", encoder_self},
            {"decoder_self", decoder_self},
            {"decoder_cross", decoder_cross},
            {"random_weights", random_weights ? "true" : "false"}})
      .Set(1);
  model_parameters_.Add({{"model", model}}).Set(parameters);
}

}  // namespace detr
