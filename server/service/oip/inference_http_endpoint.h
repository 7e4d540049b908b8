// The Open Inference Protocol's HTTP/JSON binding (KServe v2 REST) on an
// HttpServer of its own (http_listen), over the same pipeline as every
// front end:
//
//   GET  /v2                                  server metadata
//   GET  /v2/health/live, /v2/health/ready    200, or 503 when not ready
//   GET  /v2/models/{name}[/versions/1]       model metadata
//   GET  /v2/models/{name}[/versions/1]/ready 200, 404 unknown, 503 draining
//   GET  /v2/models/{name}[/versions/1]/config  Triton's model configuration
//   GET  /v2/models[/{name}[/versions/1]]/stats Triton's statistics
//   POST /v2/models/{name}[/versions/1]/infer an inference request
//
// An inference request's body is the protocol's JSON; a BYTES element is a
// string, {"b64": "..."} or, with the input parameter content_type: base64,
// a base64 string. Triton's binary data extension is read as well
// (Inference-Header-Content-Length: the JSON, then each input's
// binary_data_size bytes), and answered when asked (binary_data_output, or
// an output's binary_data: the JSON, then those outputs' bytes). A body
// whose Content-Type is image/* is the
// encoded image itself, with parameters from the query string. Answers are
// JSON; errors are {"error": "..."} with the HTTP status of
// status_mapping.h. Health and readiness need no token; the rest checks
// "authorization: Bearer ..." like the gRPC services.
//
// An inference body is parsed on a pool of its own, not on the HTTP threads:
// a JSON tensor of tens of megabytes takes a large fraction of a second, and
// health probes must not wait behind it. Bodies waiting for that pool are
// bounded in bytes; past the bound a request is refused at once.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "server/service/access/bearer_tokens.h"
#include "server/service/transport/http_server.h"
#include "server/service/pipeline/request_pipeline.h"
#include "server/service/pipeline/thread_pool.h"

namespace detr::service {

struct InferenceHttpOptions {
  std::string listen;                                 ///< host:port; port 0 picks one
  std::size_t max_body_bytes = 32 << 20;              ///< as gRPC's max_message_bytes
  std::chrono::milliseconds request_deadline{30000};  ///< receiving a whole request
  int parse_threads = 2;                              ///< the pool that parses inference bodies
  std::size_t max_parsing_bytes = 256 << 20;          ///< bodies waiting for it; beyond: RESOURCE_EXHAUSTED
  /// HTTPS (PEM files), the gRPC port's TLS settings: requests carry the
  /// same bearer tokens, so they never travel in the clear beside it.
  std::string tls_certificate, tls_key, tls_client_ca;
};

class InferenceHttpEndpoint {
 public:
  /// Throws std::runtime_error when it cannot listen there.
  InferenceHttpEndpoint(const InferenceHttpOptions& options, RequestPipeline& pipeline, const AccessControl& access);

  int port() const { return server_->port(); }

 private:
  void Handle(HttpRequest&& request, HttpResponder respond);
  // On an HTTP thread: admits the body to the parse pool, or refuses it.
  void Infer(const std::string& model, HttpRequest&& request, HttpResponder respond);
  // On the parse pool: the body as a DetectInput, then the pipeline.
  void ParseAndRun(const std::string& model, HttpRequest&& request, HttpResponder respond);
  void RefuseRequest(const std::string& model, const absl::Status& error, HttpResponder respond);

  const InferenceHttpOptions options_;
  RequestPipeline& pipeline_;
  const AccessControl& access_;
  std::atomic<std::size_t> parsing_bytes_{0};  // bodies posted to parse_pool_ and not yet parsed
  std::unique_ptr<ThreadPool> parse_pool_;     // destroyed after server_: runs what was posted
  std::unique_ptr<HttpServer> server_;         // last: serves what is above
};

}  // namespace detr::service
