#include "server/service/transport/http_server.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>

// GCC 12 sees Boost.Optional's storage in Beast's parser as maybe
// uninitialised where it is not (the optional is engaged first); the warning
// is about Boost's code, instantiated here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace detr::service {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

}  // namespace

std::pair<std::string, int> SplitHostPort(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("'" + address + "' is not host:port");
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = -1;
  try {
    std::size_t used = 0;
    port = std::stoi(address.substr(colon + 1), &used);
    if (used != address.size() - colon - 1) port = -1;
  } catch (const std::exception&) {
  }
  if (port < 0 || port > 65535) throw std::invalid_argument("'" + address + "' has no port in [0, 65535]");
  return {host.empty() ? "0.0.0.0" : host, port};
}

// What the acceptor and every session share. The server and any responder
// not yet called own it; sessions point to it (the io_context, which it owns,
// owns them), so no cycle keeps it alive. Members are destroyed bottom-up:
// sessions go with the io_context while `connections` and the options live.
struct HttpServer::State {
  HttpServerOptions options;
  HttpHandler handler;
  std::atomic<std::size_t> connections{0};
  asio::io_context io{std::max(1, options.threads)};
  tcp::acceptor acceptor{io};
  std::optional<asio::ssl::context> tls;  // HTTPS when set
  std::vector<std::thread> threads;

  State(HttpServerOptions o, HttpHandler h) : options(std::move(o)), handler(std::move(h)) {}
};

namespace {

// TLS 1.2 and later, as gRPC's; the client CA makes it mutual.
void ConfigureTls(const HttpServerOptions& options, asio::ssl::context& tls) {
  tls.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                  asio::ssl::context::single_dh_use);
  const auto use = [](const std::string& file, const auto& load) {
    try {
      load();
    } catch (const std::exception& e) {
      throw std::runtime_error("HTTPS cannot use " + file + ": " + e.what());
    }
  };
  use(options.tls_certificate, [&] { tls.use_certificate_chain_file(options.tls_certificate); });
  use(options.tls_key, [&] { tls.use_private_key_file(options.tls_key, asio::ssl::context::pem); });
  if (!options.tls_client_ca.empty()) {
    use(options.tls_client_ca, [&] { tls.load_verify_file(options.tls_client_ca); });
    tls.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  }
}

// One connection: reads a request under the request deadline, hands it to
// the handler, writes the answer under the response deadline, and reads the
// next request when the client keeps the connection alive.
// Stream: beast::tcp_stream (HTTP) or an ssl_stream over one (HTTPS, which
// first completes its handshake under the request deadline).
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <class... TlsContext>
  Session(tcp::socket socket, std::shared_ptr<HttpServer::State> state, TlsContext&... tls)
      : stream_(std::move(socket), tls...), owner_(state), state_(state.get()) {}
  ~Session() { --state_->connections; }

  void Start() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      ReadRequest();
    } else {
      Lowest().expires_after(state_->options.request_deadline);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code error) {
                                if (error) return self->Close();  // not TLS, a bad certificate, the deadline
                                self->ReadRequest();
                              });
    }
  }

 private:
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  void ReadRequest() {
    head_request_ = false;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(state_->options.max_header_bytes));
    parser_->body_limit(state_->options.max_body_bytes);
    Lowest().expires_after(state_->options.request_deadline);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  // A client that sent "Expect: 100-continue" (curl does for bodies over
  // 1 MiB) waits for an interim 100 before it sends the body; the body limit
  // has been checked against Content-Length by now.
  void OnHeader(beast::error_code error, std::size_t) {
    if (error) return OnRead(error, 0);
    head_request_ = parser_->get().method() == http::verb::head;
    const auto expect = parser_->get()[http::field::expect];
    if (!beast::iequals(expect, "100-continue")) return ReadBody();
    static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
    asio::async_write(stream_, asio::buffer(kContinue, sizeof(kContinue) - 1),
                      [self = shared_from_this()](beast::error_code error, std::size_t) {
                        if (error) return self->Close();
                        self->ReadBody();
                      });
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code error, std::size_t) {
    if (error == http::error::body_limit) return Refuse(413, "the request body is over the server's limit");
    if (error == http::error::header_limit) return Refuse(431, "the request headers are over the server's limit");
    if (error) return Close();  // end of stream, deadline, reset, malformed
    Lowest().expires_never();   // the handler's work has its own deadline
    auto message = parser_->release();
    keep_alive_ = message.keep_alive();
    HttpRequest request;
    request.method = std::string(message.method_string());
    const std::string target(message.target());
    const auto question = target.find('?');
    request.path = target.substr(0, question);
    if (question != std::string::npos) request.query = target.substr(question + 1);
    for (const auto& field : message)
      request.headers[Lower(std::string(field.name_string()))] = std::string(field.value());
    request.body = std::move(message.body());
    // The responder keeps the server's state (and so the io_context) alive
    // while it holds this session: it may be called after Stop.
    struct Held {
      std::shared_ptr<HttpServer::State> state;
      std::shared_ptr<Session> session;  // destroyed first
      std::atomic<bool> answered{false};
    };
    auto held = std::make_shared<Held>();
    held->state = owner_.lock();
    held->session = shared_from_this();
    state_->handler(std::move(request), [held](HttpResponse response) {
      if (held->answered.exchange(true)) return;  // exactly once
      auto self = held->session;
      asio::post(self->stream_.get_executor(),
                 [self, response = std::move(response)]() mutable { self->Write(std::move(response)); });
    });
  }

  // The same {"error"} form as the handlers' errors (the texts are ours: no
  // escaping needed).
  void Refuse(int status, const std::string& why) {
    keep_alive_ = false;
    Write(HttpResponse{status, "application/json", "{\"error\":\"" + why + "\"}", {}});
  }

  void Write(HttpResponse response) {
    auto message = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(response.status), 11);
    message->set(http::field::server, "detr-server");
    message->set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) message->set(name, value);
    message->keep_alive(keep_alive_);
    if (head_request_) {  // the headers a GET would get, no body
      message->content_length(response.body.size());
    } else {
      message->body() = std::move(response.body);
      message->prepare_payload();
    }
    Lowest().expires_after(state_->options.response_deadline);
    http::async_write(stream_, *message, [self = shared_from_this(), message](beast::error_code error, std::size_t) {
      if (error || !self->keep_alive_) return self->Close();
      self->ReadRequest();
    });
  }

  void Close() {
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::weak_ptr<HttpServer::State> owner_;
  HttpServer::State* state_;
  bool keep_alive_ = false;
  bool head_request_ = false;
};

void Accept(const std::shared_ptr<HttpServer::State>& owner) {
  auto* state = owner.get();
  state->acceptor.async_accept(asio::make_strand(state->io), [state, weak = std::weak_ptr<HttpServer::State>(owner)](
                                                                 beast::error_code error, tcp::socket socket) {
    auto owner = weak.lock();
    if (!owner) return;
    if (error == asio::error::operation_aborted) return;  // stopping
    if (!error) {
      if (++state->connections > state->options.max_connections) {
        --state->connections;
        beast::error_code ignored;
        socket.close(ignored);  // over the bound: refused at once
      } else {
        if (state->tls) {
          std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(std::move(socket), owner, *state->tls)
              ->Start();
        } else {
          std::make_shared<Session<beast::tcp_stream>>(std::move(socket), owner)->Start();
        }
      }
    }
    Accept(owner);
  });
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : state_(std::make_shared<State>(std::move(options), std::move(handler))) {
  if (!state_->options.tls_certificate.empty()) {
    state_->tls.emplace(asio::ssl::context::tls_server);
    ConfigureTls(state_->options, *state_->tls);
  }
  const auto [host, port] = SplitHostPort(state_->options.listen);
  try {
    tcp::resolver resolver(state_->io);
    const auto endpoint = *resolver.resolve(host, std::to_string(port), tcp::resolver::passive).begin();
    state_->acceptor.open(endpoint.endpoint().protocol());
    state_->acceptor.set_option(asio::socket_base::reuse_address(true));
    state_->acceptor.bind(endpoint.endpoint());
    state_->acceptor.listen(asio::socket_base::max_listen_connections);
    port_ = state_->acceptor.local_endpoint().port();
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot listen on " + state_->options.listen + ": " + e.what());
  }
  Accept(state_);
  for (int i = 0; i < std::max(1, state_->options.threads); ++i) {
    state_->threads.emplace_back([state = state_.get()] { state->io.run(); });
  }
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (state_->threads.empty()) return;
  state_->io.stop();
  for (auto& thread : state_->threads) thread.join();
  state_->threads.clear();
  beast::error_code ignored;
  state_->acceptor.close(ignored);  // no thread runs the io_context any more
}

}  // namespace detr::service
