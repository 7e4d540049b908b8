#include "server/service/server.h"

#include <chrono>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include "server/service/frontend/detector_service.h"
#include "server/service/http/metrics_endpoint.h"
#include "server/service/observability/metrics.h"
#include "server/service/pipeline/request_pipeline.h"

namespace detr::service {
namespace {

// A detector that fails its forward pass on purpose (testing.inject_faults:
// forward), to prove a model's failure becomes its requests' INTERNAL status.
class FailingDetector final : public core::Detector {
 public:
  explicit FailingDetector(std::unique_ptr<core::Detector> inner) : inner_(std::move(inner)) {}
  core::DetectionPass Detect(const std::vector<const core::PreparedImage*>&,
                             const std::vector<core::DetectOptions>&) override {
    FaultInjection({"forward"}).At("forward");
    return {};
  }
  const core::DetectorInfo& info() const override { return inner_->info(); }

 private:
  std::unique_ptr<core::Detector> inner_;
};

DetectorFactory WithFaults(DetectorFactory factory, const ServerConfig& config) {
  if (!config.inject_faults.count("forward")) return factory;
  return [factory = std::move(factory)](const ModelEntry& entry) {
    return std::make_unique<FailingDetector>(factory(entry));
  };
}

PipelineOptions PipelineOptionsOf(const ServerConfig& config) {
  PipelineOptions options;
  options.preprocess_threads = config.preprocess_threads;
  options.max_pixels = config.max_pixels;
  options.max_preprocessing = config.max_preprocessing;
  options.max_preprocessing_bytes = config.max_preprocessing_bytes;
  options.faults = FaultInjection(config.inject_faults);
  return options;
}

void LogModel(const ModelRunner& runner) {
  const auto& entry = runner.entry();
  const auto& c = entry.config;
  const auto& info = runner.info();
  spdlog::info(
      "model '{}': {} hidden {} layers {}+{} queries {}; attention encoder.self={} decoder.self={} "
      "decoder.cross={}; {} parameters; weights: {}; batching max {} delay {} ms queue {} workers {}",
      runner.name(), c.backbone, c.hidden_dim, c.enc_layers, c.dec_layers, c.num_queries,
      runner.attention().encoder_self, runner.attention().decoder_self, runner.attention().decoder_cross,
      info.parameter_count,
      info.random_weights
          ? "seeded random (seed " + std::to_string(entry.random_seed) + ") - untrained, detections are meaningless"
          : entry.weights,
      entry.batching.max_batch_size, entry.batching.max_queue_delay.count() / 1000.0, entry.batching.queue_capacity,
      entry.batching.workers);
  spdlog::info("model '{}': backbone convolutions: {}", runner.name(), info.backbone_engine);
  for (const auto& note : info.load_notes) spdlog::info("model '{}': {}", runner.name(), note);
}

}  // namespace

struct Server::Parts {
  ServerConfig config;
  DetectorFactory factory;
  Metrics metrics;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint;
  std::unique_ptr<RequestPipeline> pipeline;
  std::unique_ptr<DetectorService> detector_service;
  std::unique_ptr<grpc::Server> grpc;  // last: shut down and destroyed first
  ServerPorts ports;
};

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerConfig& config, DetectorFactory factory) {
  auto parts = std::make_unique<Parts>();
  parts->config = config;
  parts->factory = WithFaults(std::move(factory), config);
  std::shared_ptr<const ModelSet> models;
  try {
    parts->metrics_endpoint = std::make_unique<MetricsEndpoint>(config.metrics_listen, parts->metrics.Collectables());
    models = std::make_shared<const ModelSet>(config, parts->factory, parts->metrics);
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(e.what());
  }
  for (const auto& entry : config.models) LogModel(*models->Find(entry.name));
  parts->pipeline = std::make_unique<RequestPipeline>(PipelineOptionsOf(config), parts->metrics, models);
  parts->detector_service = std::make_unique<DetectorService>(*parts->pipeline);

  static std::once_flag plugins;
  std::call_once(plugins, [] {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  });
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(), &parts->ports.grpc);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.RegisterService(parts->detector_service.get());
  parts->grpc = builder.BuildAndStart();
  if (!parts->grpc || parts->ports.grpc == 0) return absl::UnavailableError("cannot listen on " + config.listen);
  parts->ports.metrics = parts->metrics_endpoint->port();
  auto* health = parts->grpc->GetHealthCheckService();
  health->SetServingStatus(true);
  for (const auto& entry : config.models) health->SetServingStatus(entry.name, true);
  spdlog::info(
      "serving gRPC on {} (port {}) and metrics on {} (port {}); {} model(s), {} experiment(s), default "
      "route '{}'",
      config.listen, parts->ports.grpc, config.metrics_listen, parts->ports.metrics, config.models.size(),
      config.experiments.size(), config.DefaultRoute());
  return std::make_unique<Server>(std::move(parts));
}

Server::Server(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

Server::~Server() { Shutdown(); }

const ServerPorts& Server::ports() const { return parts_->ports; }

void Server::Shutdown() {
  std::call_once(shutdown_, [this] {
    spdlog::info("draining (up to {} ms)", parts_->config.drain_timeout.count());
    parts_->pipeline->StartDraining();
    parts_->grpc->GetHealthCheckService()->Shutdown();  // every service reports NOT_SERVING from now on
    parts_->grpc->Shutdown(std::chrono::system_clock::now() + parts_->config.drain_timeout);
    parts_->grpc->Wait();
    spdlog::info("stopped");
  });
}

}  // namespace detr::service
