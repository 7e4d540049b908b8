// A minimal HTTP/1.1 endpoint that serves GET /metrics in the Prometheus text
// format, rendered from prometheus-cpp collectables.
//
// Why not prometheus-cpp's Exposer: Debian's civetweb (under the Exposer)
// fails to start in any process that loads Debian's libtorch_cpu: bind and
// listen succeed, then mg_start returns null without logging why (reproduced
// with an 8-line program linked against both). Scrapes are one small GET every
// few seconds, so a single accept loop is all this needs.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/collectable.h>

namespace detr {

class MetricsHttpServer {
 public:
  /// Binds `listen` ("host:port") and starts serving. Throws
  /// std::runtime_error if the address cannot be bound.
  MetricsHttpServer(const std::string& listen, std::vector<std::shared_ptr<prometheus::Collectable>> collectables);
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

 private:
  void Serve();
  void Answer(int client) const;
  std::string Render() const;

  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  int socket_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace detr
