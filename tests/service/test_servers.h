// Real servers for tests, on 127.0.0.1 with ports of their own:
// InProcessServer runs a Server in the test's process (port 0: no race for
// ports); ServerProcess runs the detr-server binary, for what only a process
// shows (exit codes, signals, the built-in configuration). Both stop their
// server when destroyed.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "detr/v1/detector.grpc.pb.h"
#include "server/detector_loading.h"
#include "server/service/server.h"

namespace detr::testing {

/// The model core's detector for `entry`, as detr-server loads it.
using detr::LoadDetector;

/// GET http://host_port/path; the body, or "" on failure.
std::string HttpGet(const std::string& host_port, const std::string& path);

/// In a child just forked from `parent`: asks the kernel to kill this
/// process when the parent dies, so that a test killed by CTest's timeout
/// leaves no server behind. Exits at once if the parent is already gone.
void DieWithParent(pid_t parent);

/// Everything the process logs (spdlog's default logger) while it lives,
/// formatted as the server formats it.
class CapturedLog {
 public:
  explicit CapturedLog(bool json = false);
  ~CapturedLog();
  std::string text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// What a test talks to: a gRPC target, a /metrics address and the Open
/// Inference Protocol's HTTP address.
class ServerEndpoints {
 public:
  const std::string& target() const { return target_; }
  const std::string& metrics_address() const { return metrics_; }
  const std::string& http_address() const { return http_; }
  std::unique_ptr<v1::Detector::Stub> Stub() const;
  /// GET /metrics as text ("" on failure).
  std::string ScrapeMetrics() const;
  /// The value of one sample line `name{labels}` or `name`, -1 if absent.
  double Metric(const std::string& series) const;

 protected:
  std::string target_, metrics_, http_;
};

class InProcessServer : public ServerEndpoints {
 public:
  /// Starts a Server on `config_yaml` (listen addresses replaced by
  /// 127.0.0.1:0) with `detectors` (by default the model core's,
  /// LoadDetector). Fails the current test, leaving ok() false, if it cannot
  /// start.
  explicit InProcessServer(const std::string& config_yaml, service::DetectorFactory detectors = LoadDetector);
  /// The same on a configuration already read, e.g. ServerConfig::Default()
  /// (the built-in one, its paths resolved as detr-server resolves them).
  explicit InProcessServer(service::ServerConfig config, service::DetectorFactory detectors = LoadDetector);
  ~InProcessServer();

  bool ok() const { return server_ != nullptr; }
  /// Server::Reload with `config_yaml` (listen addresses as at start).
  absl::Status Reload(const std::string& config_yaml);
  /// Drains and stops (also done on destruction).
  void Stop();

 private:
  void Start(service::ServerConfig config, service::DetectorFactory detectors);

  std::unique_ptr<service::Server> server_;
};

/// How a ServerProcess starts: more flags for the binary, and the
/// credentials its health check needs then (TLS flags; plaintext otherwise).
struct ServerProcessOptions {
  std::vector<std::string> extra_args;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
};

class ServerProcess : public ServerEndpoints {
 public:
  /// Writes `config_yaml` next to the test outputs and starts the binary
  /// (an empty `config_yaml`: the built-in configuration) on port 0 of
  /// 127.0.0.1 for each listener, reading the ports it bound from its
  /// --ports-file. Fails the current test (and leaves pid() at -1) if it
  /// never gets healthy.
  ServerProcess(const std::string& config_yaml, const std::string& name, ServerProcessOptions options = {});
  ~ServerProcess();

  /// SIGTERM, then waits; returns the exit status (-1 if killed or timed out).
  int Stop();
  int pid() const { return pid_; }
  /// Where its config file is (rewrite it, then SIGHUP, to reload).
  const std::string& config_path() const { return config_path_; }

 private:
  void ReadPorts(const std::string& ports_path);  // sets the endpoints once the file is there

  std::string config_path_, log_path_;
  int pid_ = -1;
};

}  // namespace detr::testing
