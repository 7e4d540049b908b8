// detr-server as an object: Start loads a configuration's models, checks its
// memory budget, builds the request pipeline and its front ends (detr.v1 and
// the Open Inference Protocol over gRPC, with the standard health and
// reflection services; the Open Inference Protocol over HTTP/JSON;
// Prometheus /metrics) and serves; Shutdown drains.
// main.cc is flags, signals and Start; tests start servers in-process on
// port 0 and read the ports they got.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include "server/service/config/server_config.h"
#include "server/service/memory/memory_budget.h"
#include "server/service/pipeline/model_set.h"

namespace detr::service {

struct ServerPorts {
  int grpc = 0;
  int metrics = 0;
  int http = 0;  ///< the Open Inference Protocol's HTTP port; 0 when http_listen is empty
};

class Server {
 public:
  /// Serves `config` with detectors made by `factory`. An error names what
  /// failed: a model that cannot be loaded, an address that cannot be bound,
  /// a memory budget over its limit (with its parts). `allocator`: the
  /// model core's allocator, whose cache the budget sizes and the metrics read.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerConfig& config, DetectorFactory factory,
                                                       AllocatorControl allocator = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// The bound ports (the chosen ones where the config asked for port 0).
  const ServerPorts& ports() const;
  /// Serves `config`'s models, experiments, default route and tokens from
  /// now on, without losing a request: new and changed models load while
  /// the current ones serve, then requests switch over at once, and the old
  /// models finish what they hold. Models whose entry is unchanged keep
  /// running as they are. Settings that need a restart (addresses, TLS,
  /// threads, limits) keep their values, with a warning. On any error (a
  /// new memory budget over its limit included) the current configuration
  /// keeps serving and the error says why.
  absl::Status Reload(const ServerConfig& config);

  /// New requests get UNAVAILABLE and health reports NOT_SERVING; requests
  /// in flight may finish within the config's drain timeout; then the
  /// server stops. Idempotent.
  void Shutdown();

  struct Parts;  // what Start builds; its type is private to server.cc
  explicit Server(std::unique_ptr<Parts> parts);

 private:
  std::unique_ptr<Parts> parts_;
  std::mutex reload_;  // one reload at a time
  std::once_flag shutdown_;
};

}  // namespace detr::service
