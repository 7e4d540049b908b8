// The HTTP server under /metrics and the Open Inference Protocol's REST
// binding, over real sockets on 127.0.0.1: deadlines no client can stretch,
// bounded bodies and connections, answers from other threads.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "server/service/transport/http_server.h"
#include "server/service/observability/metrics_endpoint.h"
#include "server/service/observability/metrics.h"
#include "tests/service/test_servers.h"

namespace detr::service {
namespace {

using Clock = std::chrono::steady_clock;

// A raw TCP connection to 127.0.0.1:port, closed when destroyed.
class Connection {
 public:
  explicit Connection(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    timeval timeout{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~Connection() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool Send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // Reads until the peer closes or `until` appears; "" on timeout with nothing read.
  std::string Receive(const std::string& until = "") {
    std::string text;
    char buffer[4096];
    while (true) {
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      text.append(buffer, static_cast<std::size_t>(n));
      if (!until.empty() && text.find(until) != std::string::npos) break;
    }
    return text;
  }
  // True when the server has closed the connection (reads give end of file).
  bool ClosedByPeer() {
    char byte;
    return ::recv(fd_, &byte, 1, 0) == 0;
  }

 private:
  int fd_;
  bool connected_ = false;
};

HttpServerOptions Options(std::chrono::milliseconds request_deadline = std::chrono::seconds(5)) {
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  options.request_deadline = request_deadline;
  options.max_body_bytes = 1000;
  return options;
}

HttpHandler Echo() {
  return [](HttpRequest&& request, HttpResponder respond) {
    respond({200, "text/plain", request.method + " " + request.path + " " + request.query + " " + request.body, {}});
  };
}

TEST(HttpServerTest, AnswersRequestsAndKeepsConnectionsAlive) {
  HttpServer server(Options(), Echo());
  ASSERT_GT(server.port(), 0);
  Connection connection(server.port());
  ASSERT_TRUE(connection.connected());
  ASSERT_TRUE(connection.Send("POST /v2/x?a=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"));
  EXPECT_NE(connection.Receive("hello").find("POST /v2/x a=1 hello"), std::string::npos);
  ASSERT_TRUE(connection.Send("GET /again HTTP/1.1\r\nHost: t\r\n\r\n"));  // same connection
  EXPECT_NE(connection.Receive("again").find("200 OK"), std::string::npos);
}

TEST(HttpServerTest, BodiesOverTheLimitAreRefused) {
  HttpServer server(Options(), Echo());
  Connection connection(server.port());
  ASSERT_TRUE(connection.Send("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + std::string(5000, 'x')));
  EXPECT_NE(connection.Receive().find("413"), std::string::npos);
}

TEST(HttpServerTest, AHandlerMayAnswerLaterFromAnotherThread) {
  std::promise<HttpResponder> pending;
  HttpServer server(Options(), [&](HttpRequest&&, HttpResponder respond) { pending.set_value(std::move(respond)); });
  Connection connection(server.port());
  ASSERT_TRUE(connection.Send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::thread later([&] {
    auto respond = pending.get_future().get();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    respond({202, "text/plain", "done", {}});
    respond({500, "text/plain", "a second answer is ignored", {}});
  });
  EXPECT_NE(connection.Receive("done").find("202 Accepted"), std::string::npos);
  later.join();
}

// A client that sends a request a byte at a time, never finishing it, is cut
// off at the request deadline, not kept alive by each byte; meanwhile other
// clients' scrapes are answered at once.
TEST(HttpServerTest, ASlowLorisIsCutOffWhileScrapesGoOn) {
  Metrics metrics;
  metrics.ForModel("m", "softmax").RecordRequest(absl::StatusCode::kOk, 0.1);
  MetricsEndpoint endpoint("127.0.0.1:0", metrics.Collectables());
  const std::string address = "127.0.0.1:" + std::to_string(endpoint.port());

  std::vector<std::unique_ptr<Connection>> slow;
  for (int i = 0; i < 8; ++i) slow.push_back(std::make_unique<Connection>(endpoint.port()));
  std::atomic<bool> trickling{true};
  std::thread trickle([&] {
    const std::string request = "GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Padding: " + std::string(100, 'p');
    for (std::size_t i = 0; i < request.size() && trickling; ++i) {
      for (auto& connection : slow) connection->Send(std::string(1, request[i]));
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  });
  double slowest = 0;
  for (int i = 0; i < 20; ++i) {
    const auto start = Clock::now();
    const auto body = testing::HttpGet(address, "/metrics");
    slowest = std::max(slowest, std::chrono::duration<double>(Clock::now() - start).count());
    EXPECT_NE(body.find("detr_requests_total{code=\"OK\",model=\"m\"} 1"), std::string::npos) << body.substr(0, 300);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_LT(slowest, 0.5) << "a scrape waited behind the slow clients";
  // The metrics endpoint's request deadline is 5 s: well before the 40 s
  // the trickle would take, every slow connection has been closed.
  const auto cut_off_by = Clock::now() + std::chrono::seconds(8);
  for (auto& connection : slow) {
    EXPECT_TRUE(connection->ClosedByPeer()) << "a slow client held its connection";
  }
  EXPECT_LT(Clock::now(), cut_off_by);
  trickling = false;
  trickle.join();
}

TEST(HttpServerTest, ConnectionsBeyondTheBoundAreClosedAtOnce) {
  HttpServerOptions options = Options();
  options.max_connections = 2;
  HttpServer server(options, Echo());
  Connection first(server.port()), second(server.port());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Connection third(server.port());
  EXPECT_TRUE(third.ClosedByPeer());
  ASSERT_TRUE(first.Send("GET /ok HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_NE(first.Receive("ok").find("200 OK"), std::string::npos);
}

TEST(HttpServerTest, AddressesAreCheckedAndReported) {
  EXPECT_EQ(SplitHostPort("0.0.0.0:9464"), std::make_pair(std::string("0.0.0.0"), 9464));
  EXPECT_EQ(SplitHostPort("[::1]:80"), std::make_pair(std::string("::1"), 80));
  EXPECT_EQ(SplitHostPort(":8000"), std::make_pair(std::string("0.0.0.0"), 8000));
  EXPECT_THROW(SplitHostPort("localhost"), std::invalid_argument);
  EXPECT_THROW(SplitHostPort("h:99999"), std::invalid_argument);
  HttpServer taken(Options(), Echo());
  HttpServerOptions same = Options();
  same.listen = "127.0.0.1:" + std::to_string(taken.port());
  try {
    HttpServer second(same, Echo());
    ADD_FAILURE() << "bound a port already in use";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(same.listen), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace detr::service
