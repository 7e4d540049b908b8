// detr-server: flags, process-wide settings, signals, and a Server.
//
//   detr-server [--config FILE] [--listen HOST:PORT] [--metrics-listen HOST:PORT]
#include <csignal>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "server/core/model/detr_detector.h"
#include "server/core/runtime/cpu_allocator.h"
#include "server/core/runtime/runtime.h"
#include "server/service/config/server_config.h"
#include "server/service/observability/log_format.h"
#include "server/service/server.h"

namespace {

namespace core = detr::core;
namespace service = detr::service;

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

std::unique_ptr<core::Detector> LoadDetector(const service::ModelEntry& entry) {
  return core::LoadDetrDetector(core::ModelSpec{entry.config, entry.weights, entry.random_seed});
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
  service::ServerConfig config;
  try {
    config = config_path.empty() ? service::ServerConfig::Default() : service::ServerConfig::FromFile(config_path);
    if (!listen.empty()) config.listen = listen;
    if (!metrics_listen.empty()) config.metrics_listen = metrics_listen;
    service::ConfigureLogging(config.json_logs);
    core::ConfigureThreads(config.intra_op_threads);
    spdlog::info("{}", core::RuntimeSummary());  // also checks DETR_KERNEL_MAX_ISA
  } catch (const std::exception& e) {
    spdlog::critical("bad configuration: {}", e.what());
    return 1;
  }
  core::KeepFreedBuffersForReuse();
  core::CachingCpuAllocator allocator;
  core::ScopedCpuAllocator use_allocator(allocator);

  auto server = service::Server::Start(config, LoadDetector);
  if (!server.ok()) {
    spdlog::critical("{}", std::string(server.status().message()));
    return 1;
  }
  // Loading ran parallel LibTorch ops on this thread; its idle OpenMP team
  // would make the model workers' teams sleep between parallel regions.
  core::ReleaseIntraOpThreads();

  int signal_number = 0;
  sigwait(&shutdown_signals, &signal_number);
  spdlog::info("received {}", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown();
  return 0;
}
