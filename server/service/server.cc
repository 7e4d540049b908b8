#include "server/service/server.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include "server/service/detr_v1/detector_service.h"
#include "server/service/oip/inference_grpc_service.h"
#include "server/service/oip/inference_http_endpoint.h"
#include "server/service/transport/reflection_v1_service.h"
#include "server/service/observability/metrics_endpoint.h"
#include "server/service/memory/memory_budget.h"
#include "server/service/memory/memory_pressure.h"
#include "server/service/observability/rate_limited_log.h"
#include "server/service/observability/metrics.h"
#include "server/service/pipeline/request_pipeline.h"

namespace detr::service {
namespace {

std::string ReadPem(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot read (tls)");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Plaintext, TLS, or TLS that requires a client certificate signed by the
// configured CA (mTLS).
std::shared_ptr<grpc::ServerCredentials> Credentials(const TlsConfig& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(tls.client_ca.empty()
                                                ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                                : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!tls.client_ca.empty()) options.pem_root_certs = ReadPem(tls.client_ca);
  options.pem_key_cert_pairs.push_back({ReadPem(tls.key), ReadPem(tls.certificate)});
  return grpc::SslServerCredentials(options);
}

void ApplyConnectionSettings(const ConnectionConfig& c, grpc::ServerBuilder& builder) {
  const auto ms = [](std::chrono::milliseconds value) { return static_cast<int>(value.count()); };
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ms(c.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ms(c.keepalive_timeout));
  // Clients may ping as often as every 10 s (gRPC's default policy refuses
  // pings more often than every 5 minutes and closes the connection).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  if (c.max_connection_age.count() > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, ms(c.max_connection_age));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, ms(c.max_connection_age_grace));
  }
  if (c.max_connection_idle.count() > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, ms(c.max_connection_idle));
  }
}

PipelineOptions PipelineOptionsOf(const ServerConfig& config) {
  PipelineOptions options;
  options.preprocess_threads = config.preprocess_threads;
  options.max_pixels = config.max_pixels;
  options.max_preprocessing = config.max_preprocessing;
  options.max_preprocessing_bytes = config.max_preprocessing_bytes;
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

// Resident bytes that neither allocator holds: libraries, code, static data,
// thread stacks. Measured before any model loads; the allocators' own bytes
// are exported by themselves, so they are not counted twice.
std::uint64_t RuntimeBytes(const AllocatorControl& allocator) {
  const auto resident = static_cast<double>(ResidentBytes());
  if (!allocator.read) return static_cast<std::uint64_t>(resident);
  const auto f = allocator.read();
  const double held = f.allocated_bytes + f.cached_bytes + f.malloc_in_use_bytes + f.malloc_free_bytes;
  return static_cast<std::uint64_t>(std::max(0.0, resident - held));
}

// Sizes `models`' memory budget; an error lists its parts when it exceeds the
// limit. Otherwise sizes the allocator's cache, publishes the budget and
// hands its limit to the pressure watch.
absl::Status ApplyMemoryBudget(const ServerConfig& config, const ModelSet& models, std::uint64_t runtime_bytes,
                               const AllocatorControl& allocator, Metrics& metrics, MemoryPressureWatch& pressure) {
  const auto budget = SizeMemoryBudget(config, models, runtime_bytes);
  if (budget.limit > 0 && budget.total() > budget.limit) {
    return absl::FailedPreconditionError(
        "the configuration does not fit its memory limit: " + budget.Describe() +
        "; lower queue_capacity, max_batch_size, workers or the canvases, serve fewer models, or raise the limit");
  }
  spdlog::info("memory budget: {}", budget.Describe());
  if (allocator.set_cache_limit) allocator.set_cache_limit(budget.allocator_cache_bytes);
  metrics.SetMemoryBudget(static_cast<double>(budget.limit), budget.ByKind());
  pressure.SetBudget(budget.limit, budget.allocator_cache_bytes);
  return absl::OkStatus();
}

MemoryPressureWatch::Options PressureOptions(const AllocatorControl& allocator, Metrics& metrics) {
  MemoryPressureWatch::Options options;
  options.resident_bytes = ResidentBytes;
  options.set_cache_limit = allocator.set_cache_limit;
  // Shrinks repeat as long as the working set sits near the limit: one line a minute at most.
  options.on_shrink = [&metrics, log = std::make_shared<RateLimitedLog>(1.0 / 60, 1)] {
    metrics.RecordCacheShrink();
    if (std::uint64_t suppressed = 0; log->Allow(suppressed)) {
      spdlog::warn(
          "resident memory is near the memory limit: emptied the tensor allocator's cache and returned "
          "malloc's free pages ({} more times since the last line; detr_memory_cache_shrinks_total)",
          suppressed);
    }
  };
  return options;
}

}  // namespace

struct Server::Parts {
  ServerConfig config;
  DetectorFactory factory;
  AllocatorControl allocator;
  std::uint64_t runtime_bytes = 0;  // resident before any model loaded
  Metrics metrics;
  std::unique_ptr<MemoryPressureWatch> pressure;
  AccessControl access{BearerTokens()};
  std::unique_ptr<MetricsEndpoint> metrics_endpoint;
  std::unique_ptr<RequestPipeline> pipeline;
  std::unique_ptr<DetectorService> detector_service;
  std::unique_ptr<InferenceGrpcService> inference_service;
  std::unique_ptr<InferenceHttpEndpoint> inference_http;  // stops before the pipeline goes
  std::unique_ptr<ReflectionV1Service> reflection_v1;
  std::unique_ptr<grpc::Server> grpc;  // last: shut down and destroyed first
  ServerPorts ports;
};

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerConfig& config, DetectorFactory factory,
                                                      AllocatorControl allocator) {
  if (!config.tokens_file.empty() && !config.tls.enabled() && !config.allow_plaintext_tokens) {
    return absl::FailedPreconditionError(
        "bearer tokens (auth.tokens_file / --tokens-file) without TLS would travel in the clear on the gRPC and "
        "HTTP ports: give the server a certificate (tls: {certificate, key} / --tls-cert, --tls-key), or set "
        "auth: {allow_plaintext: true} where a proxy or mesh in front of it terminates TLS");
  }
  auto parts = std::make_unique<Parts>();
  parts->config = config;
  parts->factory = std::move(factory);
  parts->allocator = std::move(allocator);
  parts->runtime_bytes = RuntimeBytes(parts->allocator);
  if (parts->allocator.read) parts->metrics.SetAllocatorSource(parts->allocator.read);
  parts->pressure = std::make_unique<MemoryPressureWatch>(PressureOptions(parts->allocator, parts->metrics));
  std::shared_ptr<const ModelSet> models;
  std::shared_ptr<grpc::ServerCredentials> credentials;
  try {
    if (!config.tokens_file.empty()) parts->access.Replace(BearerTokens::FromFile(config.tokens_file));
    credentials = Credentials(config.tls);
    parts->metrics_endpoint = std::make_unique<MetricsEndpoint>(config.metrics_listen, parts->metrics.Collectables());
    models = std::make_shared<const ModelSet>(config, parts->factory, parts->metrics);
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(e.what());
  }
  for (const auto& entry : config.models) LogModel(*models->Find(entry.name));
  if (auto budget =
          ApplyMemoryBudget(config, *models, parts->runtime_bytes, parts->allocator, parts->metrics, *parts->pressure);
      !budget.ok()) {
    return budget;
  }
  parts->pipeline = std::make_unique<RequestPipeline>(PipelineOptionsOf(config), parts->metrics, models);
  parts->detector_service = std::make_unique<DetectorService>(*parts->pipeline, parts->access);
  parts->inference_service = std::make_unique<InferenceGrpcService>(*parts->pipeline, parts->access);
  parts->reflection_v1 = std::make_unique<ReflectionV1Service>(
      std::vector<std::string>{"detr.v1.Detector", "inference.GRPCInferenceService", "grpc.health.v1.Health",
                               "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"});
  if (!config.http_listen.empty()) {
    InferenceHttpOptions http;
    http.listen = config.http_listen;
    http.max_body_bytes = static_cast<std::size_t>(config.max_message_bytes);
    http.tls_certificate = config.tls.certificate;
    http.tls_key = config.tls.key;
    http.tls_client_ca = config.tls.client_ca;
    try {
      parts->inference_http = std::make_unique<InferenceHttpEndpoint>(http, *parts->pipeline, parts->access);
    } catch (const std::exception& e) {
      return absl::UnavailableError(e.what());
    }
    parts->ports.http = parts->inference_http->port();
  }

  static std::once_flag plugins;
  std::call_once(plugins, [] {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  });
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, credentials, &parts->ports.grpc);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  ApplyConnectionSettings(config.connections, builder);
  builder.RegisterService(parts->detector_service.get());
  builder.RegisterService(parts->inference_service.get());
  builder.RegisterService(parts->reflection_v1.get());
  parts->grpc = builder.BuildAndStart();
  if (!parts->grpc || parts->ports.grpc == 0) return absl::UnavailableError("cannot listen on " + config.listen);
  parts->ports.metrics = parts->metrics_endpoint->port();
  auto* health = parts->grpc->GetHealthCheckService();
  health->SetServingStatus(true);
  for (const auto& entry : config.models) health->SetServingStatus(entry.name, true);
  spdlog::info("gRPC: {}{}", config.tls.enabled() ? (config.tls.client_ca.empty() ? "TLS" : "mTLS") : "plaintext",
               config.tokens_file.empty() ? "" : ", bearer tokens required (health is open)");
  spdlog::info(
      "serving gRPC (detr.v1, the Open Inference Protocol) on {} (port {}), metrics on {} (port {}), {}; {} "
      "model(s), {} experiment(s), default route '{}'",
      config.listen, parts->ports.grpc, config.metrics_listen, parts->ports.metrics,
      config.http_listen.empty()
          ? std::string("no HTTP inference (http_listen is empty)")
          : std::string("the Open Inference Protocol over ") + (config.tls.enabled() ? "HTTPS" : "HTTP") + " on " +
                config.http_listen + " (port " + std::to_string(parts->ports.http) + ")",
      config.models.size(), config.experiments.size(), config.DefaultRoute());
  return std::make_unique<Server>(std::move(parts));
}

Server::Server(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

namespace {

// The settings a reload cannot change, by name, where `next` differs.
std::vector<std::string> NeedRestart(const ServerConfig& now, const ServerConfig& next) {
  std::vector<std::string> names;
  const auto differs = [&](bool different, const char* name) {
    if (different) names.emplace_back(name);
  };
  differs(now.listen != next.listen, "listen");
  differs(now.metrics_listen != next.metrics_listen, "metrics_listen");
  differs(now.http_listen != next.http_listen, "http_listen");
  differs(now.intra_op_threads != next.intra_op_threads, "intra_op_threads");
  differs(now.preprocess_threads != next.preprocess_threads, "preprocess_threads");
  differs(now.json_logs != next.json_logs, "log_format");
  differs(now.max_message_bytes != next.max_message_bytes || now.max_pixels != next.max_pixels ||
              now.max_preprocessing != next.max_preprocessing ||
              now.max_preprocessing_bytes != next.max_preprocessing_bytes,
          "limits");
  differs(now.tls.certificate != next.tls.certificate || now.tls.key != next.tls.key ||
              now.tls.client_ca != next.tls.client_ca,
          "tls");
  return names;
}

}  // namespace

absl::Status Server::Reload(const ServerConfig& config) {
  std::lock_guard<std::mutex> lock(reload_);
  auto& parts = *parts_;
  const auto current = parts.pipeline->models();
  std::shared_ptr<const ModelSet> next;
  BearerTokens tokens;
  try {
    if (!config.tokens_file.empty()) tokens = BearerTokens::FromFile(config.tokens_file);
    next = std::make_shared<const ModelSet>(config, parts.factory, parts.metrics, current.get());
  } catch (const std::exception& e) {
    spdlog::error("reload failed, the current configuration keeps serving: {}", e.what());
    return absl::FailedPreconditionError(e.what());
  }
  if (auto budget =
          ApplyMemoryBudget(config, *next, parts.runtime_bytes, parts.allocator, parts.metrics, *parts.pressure);
      !budget.ok()) {
    spdlog::error("reload failed, the current configuration keeps serving: {}", std::string(budget.message()));
    return budget;
  }
  for (const auto& name : NeedRestart(parts.config, config)) {
    spdlog::warn("reload: '{}' changed; it takes effect at the next restart", name);
  }
  for (const auto& entry : config.models) {
    if (next->runners().at(entry.name) !=
        (current->runners().count(entry.name) ? current->runners().at(entry.name) : nullptr)) {
      LogModel(*next->Find(entry.name));
    }
  }
  auto* health = parts.grpc->GetHealthCheckService();
  for (const auto& entry : config.models) health->SetServingStatus(entry.name, true);
  parts.pipeline->SetModels(next);  // from here on, requests go to the new set
  parts.access.Replace(std::move(tokens));
  parts.config.tokens_file = config.tokens_file;
  parts.config.drain_timeout = config.drain_timeout;
  for (const auto& entry : current->config().models) {
    if (!config.FindModel(entry.name)) health->SetServingStatus(entry.name, false);
  }
  spdlog::info(
      "reloaded: {} model(s) ({} loaded anew), {} experiment(s), default route '{}'", config.models.size(),
      [&] {
        int fresh = 0;
        for (const auto& [name, runner] : next->runners()) {
          fresh += !current->runners().count(name) || current->runners().at(name) != runner;
        }
        return fresh;
      }(),
      config.experiments.size(), config.DefaultRoute());
  return absl::OkStatus();
}

Server::~Server() { Shutdown(); }

const ServerPorts& Server::ports() const { return parts_->ports; }

void Server::Shutdown() {
  std::call_once(shutdown_, [this] {
    std::lock_guard<std::mutex> lock(reload_);  // no reload half done
    spdlog::info("draining (up to {} ms)", parts_->config.drain_timeout.count());
    parts_->pipeline->StartDraining();
    parts_->grpc->GetHealthCheckService()->Shutdown();  // every service reports NOT_SERVING from now on
    parts_->grpc->Shutdown(std::chrono::system_clock::now() + parts_->config.drain_timeout);
    parts_->grpc->Wait();
    spdlog::info("stopped");
  });
}

}  // namespace detr::service
