// A small HTTP/1.1 server on Boost.Beast (Asio) for /metrics and the Open
// Inference Protocol's REST binding.
//
// Why Beast: the server needs a deadline per request that a client cannot
// stretch (a "slow loris" sending a byte a second would hold a connection
// forever under per-read timeouts), bounded headers and bodies, many
// connections at once, and handlers that answer later from another thread
// (the pipeline's callback). Beast's tcp_stream gives each operation an
// overall deadline. prometheus-cpp's Exposer (civetweb) does not start in a
// process that loads Debian's LibTorch; cpp-httplib (Debian's
// libcpp-httplib-dev) works beside LibTorch but has only per-read timeouts
// and no hook to bound a whole connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace detr::service {

struct HttpRequest {
  std::string method;                          ///< "GET", "POST", ...
  std::string path;                            ///< the target without its query
  std::string query;                           ///< after '?', undecoded
  std::map<std::string, std::string> headers;  ///< names in lower case
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Answers a request; call it exactly once, from any thread, at any time.
using HttpResponder = std::function<void(HttpResponse)>;
/// Runs on one of the server's threads; must not block for long (hand
/// longer work elsewhere and answer through the responder).
using HttpHandler = std::function<void(HttpRequest&&, HttpResponder)>;

struct HttpServerOptions {
  std::string listen = "127.0.0.1:0";  ///< host:port; port 0 picks a free one
  int threads = 2;
  /// From the first byte of a request to its last: a client that sends too
  /// slowly is cut off when it passes (also the idle time of a kept-alive
  /// connection before its next request).
  std::chrono::milliseconds request_deadline{10000};
  std::chrono::milliseconds response_deadline{10000};  ///< writing the answer
  std::size_t max_header_bytes = 16 << 10;
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_connections = 256;  ///< beyond: new connections are closed at once
  /// HTTPS: the server's certificate chain and key (PEM files); empty:
  /// plain HTTP. With a client CA, clients must present a certificate of it.
  std::string tls_certificate, tls_key, tls_client_ca;
};

class HttpServer {
 public:
  /// Binds and starts serving. Throws std::runtime_error naming the address
  /// when it cannot listen there, or the file when TLS cannot use it.
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// The bound port (the chosen one when listen asked for port 0).
  int port() const { return port_; }
  /// Stops accepting and closes every connection; joins the threads.
  void Stop();

  struct State;  // shared with its connections; defined in the .cc

 private:
  std::shared_ptr<State> state_;
  int port_ = 0;
};

/// "host:port" split; the host may be a name, an IPv4 or a [bracketed] IPv6
/// address. Throws std::invalid_argument.
std::pair<std::string, int> SplitHostPort(const std::string& address);

}  // namespace detr::service
