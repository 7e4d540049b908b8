// GET /metrics in Prometheus' text format, on an HttpServer of its own, so
// that scrapes reach it whatever the detection front ends are doing, and no
// client can hold it (the server's deadlines).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>

#include "server/service/transport/http_server.h"

namespace detr::service {

class MetricsEndpoint {
 public:
  /// Serves `collectables` on `listen` (host:port; port 0 picks one).
  /// Throws std::runtime_error when it cannot listen there.
  MetricsEndpoint(const std::string& listen, std::vector<std::shared_ptr<prometheus::Collectable>> collectables);

  int port() const { return server_->port(); }

 private:
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::unique_ptr<HttpServer> server_;  // last: serves what is above
};

}  // namespace detr::service
