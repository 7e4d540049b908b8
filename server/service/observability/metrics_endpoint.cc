#include "server/service/observability/metrics_endpoint.h"

#include <prometheus/text_serializer.h>

namespace detr::service {
namespace {

std::string Render(const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables) {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& collectable : collectables) {
    auto collected = collectable->Collect();
    families.insert(families.end(), std::make_move_iterator(collected.begin()),
                    std::make_move_iterator(collected.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace

MetricsEndpoint::MetricsEndpoint(const std::string& listen,
                                 std::vector<std::shared_ptr<prometheus::Collectable>> collectables)
    : collectables_(std::move(collectables)) {
  HttpServerOptions options;
  options.listen = listen;
  options.threads = 2;
  options.request_deadline = std::chrono::seconds(5);
  options.response_deadline = std::chrono::seconds(10);
  options.max_body_bytes = 0;  // a scrape is a GET
  options.max_connections = 64;
  server_ = std::make_unique<HttpServer>(options, [this](HttpRequest&& request, HttpResponder respond) {
    if (request.path != "/metrics") return respond({404, "text/plain; charset=utf-8", "only /metrics is here\n", {}});
    if (request.method != "GET" && request.method != "HEAD") {
      return respond({405, "text/plain; charset=utf-8", "GET /metrics\n", {{"Allow", "GET, HEAD"}}});
    }
    respond({200, "text/plain; version=0.0.4; charset=utf-8", Render(collectables_), {}});
  });
}

}  // namespace detr::service
