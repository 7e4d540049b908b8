// Starts the real detr-server binary on 127.0.0.1 with free ports and a
// config of the test's, waits until it reports SERVING, and stops it with
// SIGTERM (checking that it exits 0) when destroyed.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "detr/v1/detector.grpc.pb.h"

namespace detr::testing {

/// GET http://host_port/path; the body, or "" on failure.
std::string HttpGet(const std::string& host_port, const std::string& path);

/// In a child just forked from `parent`: asks the kernel to kill this
/// process when the parent dies, so that a test killed by CTest's timeout
/// leaves no server behind. Exits at once if the parent is already gone.
void DieWithParent(pid_t parent);

/// A TCP port on 127.0.0.1 that was free a moment ago (prometheus-style
/// servers cannot bind port 0 and report it, so the test picks one).
int FreePort();

class ServerProcess {
 public:
  /// Writes `config_yaml` next to the test outputs and starts the server
  /// (an empty `config_yaml`: the built-in configuration).
  /// Fails the current test (and leaves pid() at -1) if it never gets healthy.
  explicit ServerProcess(const std::string& config_yaml, const std::string& name);
  ~ServerProcess();

  /// SIGTERM, then waits; returns the exit status (-1 if killed or timed out).
  int Stop();

  const std::string& target() const { return target_; }
  const std::string& metrics_address() const { return metrics_; }
  int pid() const { return pid_; }
  std::unique_ptr<v1::Detector::Stub> Stub() const;
  /// GET /metrics as text ("" on failure).
  std::string ScrapeMetrics() const;
  /// The value of one sample line `name{labels}` or `name`, -1 if absent.
  double Metric(const std::string& series) const;

 private:
  std::string target_, metrics_, log_path_;
  int pid_ = -1;
};

}  // namespace detr::testing
