// detr-server: flags, process-wide settings, signals, and a Server.
//
//   detr-server [--config FILE] [--listen HOST:PORT] [--metrics-listen HOST:PORT] [--http-listen HOST:PORT]
//               [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]] [--tokens-file FILE]
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "server/detector_loading.h"
#include "server/core/runtime/cpu_allocator.h"
#include "server/core/runtime/runtime.h"
#include "server/service/config/cpu_limit.h"
#include "server/service/config/server_config.h"
#include "server/service/observability/log_format.h"
#include "server/service/server.h"

namespace {

namespace core = detr::core;
namespace service = detr::service;

// Blocks SIGTERM, SIGINT and SIGHUP in every thread (threads inherit the
// mask), so that main can wait for them with sigwait instead of a handler.
sigset_t BlockServerSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

struct Flags {
  std::string config_path, listen, metrics_listen, http_listen;
  std::string tls_cert, tls_key, tls_client_ca, tokens_file;
  std::string ports_file;
};

// The ports the server bound, as JSON, for whoever started it on port 0:
// written whole under a temporary name, then renamed, so that a reader never
// sees half a file.
bool WritePortsFile(const std::string& path, const service::ServerPorts& ports) {
  const std::string partial = path + ".partial";
  {
    std::ofstream out(partial, std::ios::trunc);
    out << "{\"grpc\": " << ports.grpc << ", \"metrics\": " << ports.metrics << ", \"http\": " << ports.http << "}\n";
    if (!out) return false;
  }
  return std::rename(partial.c_str(), path.c_str()) == 0;
}

// The configuration file (or the built-in one) with the flags' overrides.
service::ServerConfig LoadConfig(const Flags& flags) {
  auto config =
      flags.config_path.empty() ? service::ServerConfig::Default() : service::ServerConfig::FromFile(flags.config_path);
  if (!flags.listen.empty()) config.listen = flags.listen;
  if (!flags.metrics_listen.empty()) config.metrics_listen = flags.metrics_listen;
  if (!flags.http_listen.empty()) config.http_listen = flags.http_listen;
  // Flags for what a deployment mounts (a Secret), so that one config file
  // serves with and without TLS (deploy/k8s/overlays/tls, deploy/docker/compose.tls.yml).
  if (!flags.tls_cert.empty()) {
    config.tls.certificate = flags.tls_cert;
    config.tls.key = flags.tls_key;
  }
  if (!flags.tls_client_ca.empty()) config.tls.client_ca = flags.tls_client_ca;
  if (!flags.tokens_file.empty()) config.tokens_file = flags.tokens_file;
  return config;
}

service::AllocatorControl ControlOf(core::CachingCpuAllocator& allocator) {
  return {[&allocator] {
            const auto heap = core::MallocBytes();
            return service::AllocatorFigures{static_cast<double>(allocator.bytes_in_use()),
                                             static_cast<double>(allocator.cached_bytes()),
                                             static_cast<double>(allocator.max_cached_bytes()),
                                             static_cast<double>(heap.in_use), static_cast<double>(heap.free)};
          },
          [&allocator](std::uint64_t bytes) { allocator.SetMaxCachedBytes(bytes); }};
}

}  // namespace

int main(int argc, char** argv) {
  core::UseFastBlasKernels(argv);  // may re-execute the program: before anything else
  Flags flags;
  CLI::App app{
      "detr-server: DETR detection over gRPC, with A/B experiments between attention types.\n"
      "SIGHUP reloads the configuration; SIGTERM or SIGINT drains and stops."};
  app.set_version_flag("--version", std::string("detr-server ") + DETR_VERSION);
  app.add_option("--config", flags.config_path,
                 "server config (YAML/JSON); default: the built-in deploy/detr-server.yaml")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", flags.listen, "gRPC address, overrides the config");
  app.add_option("--metrics-listen", flags.metrics_listen, "Prometheus address, overrides the config");
  app.add_option("--http-listen", flags.http_listen,
                 "the Open Inference Protocol over HTTP/JSON: address, overrides the config");
  auto* cert =
      app.add_option("--tls-cert", flags.tls_cert, "TLS: the server's certificate chain (PEM), overrides the config")
          ->check(CLI::ExistingFile);
  auto* key =
      app.add_option("--tls-key", flags.tls_key, "TLS: the server's private key (PEM)")->check(CLI::ExistingFile);
  cert->needs(key);
  key->needs(cert);
  app.add_option("--tls-client-ca", flags.tls_client_ca,
                 "mTLS: accept only clients with a certificate of this CA (PEM)")
      ->check(CLI::ExistingFile)
      ->needs(cert);
  app.add_option("--tokens-file", flags.tokens_file,
                 "require 'authorization: Bearer <token>' with a token of this file (one per line)")
      ->check(CLI::ExistingFile);
  app.add_option("--ports-file", flags.ports_file,
                 "once serving, write the ports bound as JSON here ({\"grpc\", \"metrics\", \"http\"}): for "
                 "addresses with port 0");
  CLI11_PARSE(app, argc, argv);

  const sigset_t signals = BlockServerSignals();
  service::ServerConfig config;
  try {
    config = LoadConfig(flags);
    service::ConfigureLogging(config.json_logs);
    const int threads = service::IntraOpThreads(config.intra_op_threads);
    if (config.intra_op_threads <= 0) {
      spdlog::info("intra_op_threads: 0, so {} (the cores this process may use, capped by its cgroup's CPU quota)",
                   threads);
    }
    core::ConfigureThreads(threads);
    spdlog::info("{}", core::RuntimeSummary());  // also checks DETR_KERNEL_MAX_ISA
  } catch (const std::exception& e) {
    spdlog::critical("bad configuration: {}", e.what());
    return 1;
  }
  core::KeepFreedBuffersForReuse();
  core::CachingCpuAllocator allocator;
  core::ScopedCpuAllocator use_allocator(allocator);

  auto server = service::Server::Start(config, detr::LoadDetector, ControlOf(allocator));
  if (!server.ok()) {
    spdlog::critical("{}", std::string(server.status().message()));
    return 1;
  }
  if (!flags.ports_file.empty() && !WritePortsFile(flags.ports_file, (*server)->ports())) {
    spdlog::critical("cannot write the ports file {}", flags.ports_file);
    (*server)->Shutdown();
    return 1;
  }
  // Loading ran parallel LibTorch ops on this thread; its idle OpenMP team
  // would make the model workers' teams sleep between parallel regions.
  core::ReleaseIntraOpThreads();

  int signal_number = 0;
  while (sigwait(&signals, &signal_number) == 0 && signal_number == SIGHUP) {
    spdlog::info("received SIGHUP: reloading {}",
                 flags.config_path.empty() ? "the built-in configuration" : flags.config_path);
    try {
      (void)(*server)->Reload(LoadConfig(flags));  // a failure is logged; the current configuration serves on
    } catch (const std::exception& e) {
      spdlog::error("reload failed, the current configuration keeps serving: {}", e.what());
    }
  }
  spdlog::info("received {}", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown();
  return 0;
}
