// detr-server: parses flags, builds the objects, serves until SIGTERM/SIGINT.
//
//   detr-server [--config FILE] [--listen HOST:PORT] [--metrics-listen HOST:PORT]
#include <csignal>
#include <map>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include "server/core/cpu_allocator.h"
#include "server/core/runtime.h"
#include "server/service/detector_service.h"
#include "server/service/metrics.h"
#include "server/service/model_runner.h"
#include "server/service/router.h"
#include "server/service/server_config.h"

namespace {

void ConfigureLogging(bool json) {
  if (json) {
    spdlog::set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","message":"%v"})");
  } else {
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
}

// Blocks SIGTERM/SIGINT in every thread (threads inherit the mask), so that
// main can wait for them with sigwait instead of a handler.
sigset_t BlockShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

void LogModel(const detr::ModelRunner& runner) {
  const auto& c = runner.entry().config;
  spdlog::info("model '{}': {} hidden {} layers {}+{} queries {}; attention encoder.self={} decoder.self={} "
               "decoder.cross={}; {} parameters; weights: {}; batching max {} delay {} ms queue {} workers {}",
               runner.name(), c.backbone, c.hidden_dim, c.enc_layers, c.dec_layers, c.num_queries,
               detr::ToString(c.encoder_self.type), detr::ToString(c.decoder_self.type),
               detr::ToString(c.decoder_cross.type), runner.parameter_count(),
               runner.random_weights() ? "seeded random (seed " + std::to_string(runner.entry().random_seed) +
                                             ") - untrained, detections are meaningless"
                                       : runner.entry().weights,
               runner.entry().batching.max_batch_size, runner.entry().batching.max_queue_delay.count() / 1000.0,
               runner.entry().batching.queue_capacity, runner.entry().batching.workers);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, listen, metrics_listen;
  CLI::App app{"detr-server: DETR detection over gRPC, with A/B experiments between attention types."};
  app.add_option("--config", config_path, "server config (YAML/JSON); default: the built-in deploy/detr-server.yaml")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", listen, "gRPC address, overrides the config");
  app.add_option("--metrics-listen", metrics_listen, "Prometheus address, overrides the config");
  CLI11_PARSE(app, argc, argv);

  const sigset_t shutdown_signals = BlockShutdownSignals();
  detr::ServerConfig config;
  try {
    config = config_path.empty() ? detr::ServerConfig::Default() : detr::ServerConfig::FromFile(config_path);
  } catch (const std::exception& e) {
    spdlog::critical("bad configuration: {}", e.what());
    return 1;
  }
  if (!listen.empty()) config.listen = listen;
  if (!metrics_listen.empty()) config.metrics_listen = metrics_listen;
  ConfigureLogging(config.json_logs);
  detr::ConfigureThreads(config.intra_op_threads);
  detr::KeepFreedBuffersForReuse();
  detr::CachingCpuAllocator allocator;
  detr::ScopedCpuAllocator use_allocator(allocator);

  std::unique_ptr<detr::Metrics> metrics;
  try {
    metrics = std::make_unique<detr::Metrics>(config.metrics_listen);
  } catch (const std::exception& e) {
    spdlog::critical("cannot serve metrics on {}: {}", config.metrics_listen, e.what());
    return 1;
  }
  std::map<std::string, std::unique_ptr<detr::ModelRunner>> runners;
  for (const auto& entry : config.models) {
    try {
      runners.emplace(entry.name, std::make_unique<detr::ModelRunner>(entry, *metrics));
    } catch (const std::exception& e) {
      spdlog::critical("model '{}' cannot be loaded: {}", entry.name, detr::ErrorMessage(e));
      return 1;
    }
    LogModel(*runners.at(entry.name));
  }
  // Loading ran parallel LibTorch ops on this thread; its idle OpenMP team
  // would make the model workers' teams sleep between parallel regions.
  detr::ReleaseIntraOpThreads();
  for (const auto& experiment : config.experiments) {
    metrics->InitializeExperiment(experiment.name, experiment.kind == detr::ExperimentKind::kShadow);
  }
  detr::Router router(config, runners);
  detr::DetectorService service(config, runners, router, *metrics);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (!server || port == 0) {
    spdlog::critical("cannot listen on {}", config.listen);
    return 1;
  }
  auto* health = server->GetHealthCheckService();
  health->SetServingStatus(true);
  for (const auto& [name, runner] : runners) health->SetServingStatus(name, true);
  spdlog::info("detr-server serving gRPC on {} and metrics on {}/metrics; {}; {} model(s), {} experiment(s), "
               "default route '{}'",
               config.listen, config.metrics_listen, detr::RuntimeSummary(), runners.size(), config.experiments.size(),
               config.default_route.empty() ? config.models.front().name : config.default_route);

  int signal_number = 0;
  sigwait(&shutdown_signals, &signal_number);
  spdlog::info("received {}: draining (up to {} ms)", signal_number == SIGTERM ? "SIGTERM" : "SIGINT",
               config.drain_timeout.count());
  service.StartDraining();
  health->Shutdown();  // every service reports NOT_SERVING from now on
  server->Shutdown(std::chrono::system_clock::now() + config.drain_timeout);
  for (auto& [name, runner] : runners) runner->Stop();
  spdlog::info("stopped");
  return 0;
}
