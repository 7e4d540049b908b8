// The service's Prometheus metrics: built once at start-up, handed to whoever
// records. Names follow Prometheus conventions: detr_ prefix, base units,
// _total for counters, few labels.
#pragma once

#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace detr {

class MetricsHttpServer;

class Metrics {
 public:
  /// Registers every family and serves them on `listen` (host:port) at /metrics.
  explicit Metrics(const std::string& listen);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  enum class Stage { kQueue, kPreprocess, kInference, kPostprocess };

  void RecordRequest(const std::string& model, const std::string& attention, const std::string& code, double seconds);
  void RecordStage(const std::string& model, Stage stage, double seconds);
  void RecordBatch(const std::string& model, int batch_size);
  void RecordInferenceMemory(const std::string& model, double bytes);
  void SetQueueDepth(const std::string& model, double depth);
  void RecordShadowAgreement(const std::string& experiment, double agreement);
  /// detr_model_info: value 1, labels name the attention type of each site;
  /// detr_model_parameters: the parameter count.
  void SetModelInfo(const std::string& model, const std::string& encoder_self, const std::string& decoder_self,
                    const std::string& decoder_cross, double parameters, bool random_weights);

  /// Creates a model's and an experiment's series at zero, so that rate()
  /// sees their first requests (a series born at 1 shows no increase).
  void InitializeModel(const std::string& model, const std::string& attention);
  void InitializeExperiment(const std::string& experiment, bool shadow);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Histogram>& stage_duration_;
  prometheus::Family<prometheus::Histogram>& batch_size_;
  prometheus::Family<prometheus::Histogram>& inference_memory_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Counter>& requests_total_;
  prometheus::Family<prometheus::Histogram>& shadow_agreement_;
  prometheus::Family<prometheus::Gauge>& model_info_;
  prometheus::Family<prometheus::Gauge>& model_parameters_;
  std::shared_ptr<prometheus::Collectable> process_collector_;
  std::unique_ptr<MetricsHttpServer> http_;  // last: starts serving once every family exists
};

}  // namespace detr
