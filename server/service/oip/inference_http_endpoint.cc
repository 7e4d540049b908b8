#include "server/service/oip/inference_http_endpoint.h"

#include <vector>

#include "server/service/oip/inference_call.h"
#include "server/service/oip/model_description.h"
#include "server/service/oip/inference_json.h"
#include "server/service/pipeline/client_text.h"
#include "server/service/status_mapping.h"

namespace detr::service {
namespace {

constexpr const char* kJson = "application/json";

HttpResponse Json(int status, std::string body) { return {status, kJson, std::move(body), {}}; }

HttpResponse Error(const absl::Status& status) {
  return Json(HttpStatus(status.code()), oip::ErrorJson(std::string(status.message())));
}

std::vector<std::string> Segments(const std::string& path) {
  std::vector<std::string> segments;
  std::size_t at = 1;
  while (at <= path.size()) {
    const std::size_t end = std::min(path.find('/', at), path.size());
    if (end > at) segments.push_back(path.substr(at, end - at));
    at = end + 1;
  }
  return segments;
}

std::string Header(const HttpRequest& request, const std::string& name) {
  const auto it = request.headers.find(name);
  return it == request.headers.end() ? std::string() : it->second;
}

// "/v2/models/{name}[/versions/{version}][/{action}]" -> name, action.
struct ModelPath {
  std::string name, version, action;
};

absl::StatusOr<ModelPath> ParseModelPath(const std::vector<std::string>& segments) {
  ModelPath path;
  auto name = oip::PercentDecode(segments[2]);
  if (!name.ok()) return name.status();
  path.name = std::move(*name);
  std::size_t next = 3;
  if (segments.size() > next + 1 && segments[next] == "versions") {
    path.version = segments[next + 1];
    next += 2;
  }
  if (segments.size() == next + 1) path.action = segments[next];
  if (segments.size() > next + 1) return absl::NotFoundError("no such path");
  return path;
}

HttpResponse Statistics(const ModelSet& models, const std::string& name, const std::string& version) {
  auto statistics = oip::CollectStatistics(models, name, version);
  return statistics.ok() ? Json(200, oip::ModelStatisticsJson(*statistics)) : Error(statistics.status());
}

// GET /v2/models/{name}[/versions/{v}][/config|/stats]
HttpResponse Describe(const ModelSet& models, const ModelPath& path) {
  if (path.action == "stats") return Statistics(models, path.name, path.version);
  if (path.action == "config") {
    auto config = oip::DescribeConfiguration(models, path.name, path.version);
    return config.ok() ? Json(200, oip::ModelConfigJson(*config)) : Error(config.status());
  }
  auto metadata = oip::DescribeModel(models, path.name);
  return metadata.ok() ? Json(200, oip::ModelMetadataJson(*metadata)) : Error(metadata.status());
}

}  // namespace

InferenceHttpEndpoint::InferenceHttpEndpoint(const InferenceHttpOptions& options, RequestPipeline& pipeline,
                                             const AccessControl& access)
    : options_(options),
      pipeline_(pipeline),
      access_(access),
      parse_pool_(std::make_unique<ThreadPool>(options.parse_threads, [](const std::string&) {
        // Infer's task catches what parsing throws and answers it.
      })) {
  HttpServerOptions http;
  http.listen = options.listen;
  http.threads = 2;
  http.request_deadline = options.request_deadline;
  http.response_deadline = std::chrono::seconds(30);
  http.max_body_bytes = options.max_body_bytes;
  http.max_connections = 256;
  http.tls_certificate = options.tls_certificate;
  http.tls_key = options.tls_key;
  http.tls_client_ca = options.tls_client_ca;
  server_ = std::make_unique<HttpServer>(
      http, [this](HttpRequest&& request, HttpResponder respond) { Handle(std::move(request), std::move(respond)); });
}

void InferenceHttpEndpoint::Handle(HttpRequest&& request, HttpResponder respond) {
  const auto segments = Segments(request.path);
  const bool get = request.method == "GET" || request.method == "HEAD";
  if (segments.empty() || segments[0] != "v2") {
    return respond(Error(absl::NotFoundError("no such path; the Open Inference Protocol is under /v2")));
  }
  // Liveness and readiness stay open without a token, as gRPC health does.
  if (segments.size() == 3 && segments[1] == "health" && get) {
    if (segments[2] == "live") return respond(Json(200, R"({"live":true})"));
    if (segments[2] == "ready") {
      return respond(pipeline_.draining() ? Json(503, R"({"ready":false})") : Json(200, R"({"ready":true})"));
    }
  }
  const bool model_path = segments.size() >= 3 && segments[1] == "models";
  auto path = model_path ? ParseModelPath(segments) : absl::StatusOr<ModelPath>(ModelPath{});
  if (!path.ok()) return respond(Error(path.status()));
  if (model_path && path->action == "ready" && get) {
    if (!pipeline_.models()->Knows(path->name)) {
      return respond(Error(absl::NotFoundError("no model or experiment named '" + Echo(path->name) + "'")));
    }
    const bool ready = !pipeline_.draining();
    return respond(Json(ready ? 200 : 503, oip::ModelReadyJson(path->name, ready)));
  }
  if (auto access = access_.Check(Header(request, "authorization")); !access.ok()) return respond(Error(access));
  if (segments.size() == 1 && get) return respond(Json(200, oip::ServerMetadataJson(oip::DescribeServer())));
  const auto models = pipeline_.models();
  if (segments.size() == 3 && segments[1] == "models" && segments[2] == "stats" && get) {
    return respond(Statistics(*models, "", ""));
  }
  if (model_path && get && (path->action.empty() || path->action == "config" || path->action == "stats")) {
    return respond(Describe(*models, *path));
  }
  if (model_path && path->action == "infer") {
    if (request.method != "POST") {
      return respond({405, kJson, oip::ErrorJson("infer takes a POST"), {{"Allow", "POST"}}});
    }
    if (!models->Knows(path->name)) {  // before reading the body: whatever it holds, the answer is 404
      return RefuseRequest(path->name, absl::NotFoundError("no model or experiment named '" + Echo(path->name) + "'"),
                           std::move(respond));
    }
    return Infer(path->name, std::move(request), std::move(respond));
  }
  respond(Error(absl::NotFoundError("no such path: " + Echo(request.method + " " + request.path))));
}

void InferenceHttpEndpoint::Infer(const std::string& model, HttpRequest&& http, HttpResponder respond) {
  const std::size_t bytes = http.body.size();
  if (parsing_bytes_.fetch_add(bytes) + bytes > options_.max_parsing_bytes) {
    parsing_bytes_.fetch_sub(bytes);
    return RefuseRequest(
        model,
        absl::ResourceExhaustedError("the server is parsing " + std::to_string(options_.max_parsing_bytes >> 20) +
                                     " MB of request bodies already; retry later"),
        std::move(respond));
  }
  parse_pool_->Post([this, model, bytes, http = std::move(http), respond = std::move(respond)]() mutable {
    struct Release {  // the body leaves the bound however parsing ends
      std::atomic<std::size_t>& parsing;
      std::size_t bytes;
      ~Release() { parsing.fetch_sub(bytes); }
    } release{parsing_bytes_, bytes};
    try {
      ParseAndRun(model, std::move(http), respond);
    } catch (const std::exception& e) {  // e.g. out of memory: answered, and the pool keeps going
      respond(Error(absl::InternalError(std::string("could not parse the request: ") + e.what())));
    }
  });
}

void InferenceHttpEndpoint::RefuseRequest(const std::string& model, const absl::Status& error, HttpResponder respond) {
  DetectInput named;
  named.model = model;
  pipeline_.Refuse(std::move(named), error,
                   [respond](absl::StatusOr<DetectResult> result) { respond(Error(result.status())); });
}

namespace {

// The HTTP side of an infer. HTTP/1.1 tells a server nothing when its client
// goes: only the timeout parameter bounds the wait (and the server's queues,
// which refuse work beyond their capacity at once). Answered as the
// protocol's JSON, with Triton's binary outputs after it where asked.
class HttpInferCall final : public oip::InferBinding {
 public:
  explicit HttpInferCall(HttpResponder respond) : respond_(std::move(respond)) {}
  std::shared_ptr<const CallState> StartCall(CallState::Deadline deadline) override {
    return std::make_shared<CallState>(deadline);
  }
  void Answer(absl::StatusOr<oip::InferResponse> result, const oip::InferRequest& request) override {
    if (!result.ok()) return respond_(Error(result.status()));
    auto answer = oip::InferResponseJson(*result, request);
    if (answer.json_bytes == 0) return respond_(Json(200, std::move(answer.body)));
    HttpResponse binary{200, "application/octet-stream", std::move(answer.body), {}};
    binary.headers.emplace_back("Inference-Header-Content-Length", std::to_string(answer.json_bytes));
    respond_(std::move(binary));
  }

 private:
  HttpResponder respond_;
};

}  // namespace

void InferenceHttpEndpoint::ParseAndRun(const std::string& model, HttpRequest&& http, HttpResponder respond) {
  const std::string content_type = Header(http, "content-type");
  absl::StatusOr<oip::InferRequest> parsed = absl::InvalidArgumentError("");
  if (content_type.rfind("image/", 0) == 0) {
    parsed = oip::ImageBodyRequest(std::move(http.body), http.query, model);
  } else {
    std::size_t json_bytes = 0;
    const std::string header = Header(http, "inference-header-content-length");
    if (!header.empty()) {
      try {
        json_bytes = std::stoul(header);
      } catch (const std::exception&) {
        json_bytes = http.body.size() + 1;  // refused below as past the end
      }
    }
    parsed = oip::ParseInferRequest(std::move(http.body), json_bytes, model);
  }
  oip::Infer(pipeline_, std::move(parsed), model, "", std::make_shared<HttpInferCall>(std::move(respond)));
}

}  // namespace detr::service
