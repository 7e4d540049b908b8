#include "tests/service/test_servers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <mutex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/core/runtime/cpu_allocator.h"
#include "server/core/runtime/runtime.h"
#include "server/service/observability/log_format.h"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "grpc/health/v1/health.grpc.pb.h"

namespace detr::testing {
std::string HttpGet(const std::string& host_port, const std::string& path) {
  const auto colon = host_port.rfind(':');
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1))));
  inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &address.sin_addr);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return "";
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: " + host_port + "\r\nConnection: close\r\n\r\n";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buffer[65536];
  ssize_t n;
  while ((n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0) response.append(buffer, static_cast<size_t>(n));
  ::close(fd);
  const auto body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

namespace {

bool Serving(const std::string& target, const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  auto channel = grpc::CreateChannel(target, credentials ? credentials : grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  return stub->Check(&context, request, &response).ok() &&
         response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

}  // namespace

void DieWithParent(pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);  // it died before the request took effect
}

namespace {

// The process-wide settings detr-server's main makes: LibTorch's threads, and
// the caching allocator whose scopes measure a pass's memory.
void ConfigureProcessOnce() {
  static core::CachingCpuAllocator allocator;
  static std::once_flag once;
  std::call_once(once, [] {
    static core::ScopedCpuAllocator use_allocator(allocator);
    core::ConfigureThreads(2);
  });
}

}  // namespace

struct CapturedLog::Impl {
  std::ostringstream text;
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
};

CapturedLog::CapturedLog(bool json) : impl_(std::make_unique<Impl>()) {
  auto logger =
      std::make_shared<spdlog::logger>("captured", std::make_shared<spdlog::sinks::ostream_sink_mt>(impl_->text));
  spdlog::set_default_logger(logger);
  service::ConfigureLogging(json);
}

CapturedLog::~CapturedLog() {
  spdlog::set_default_logger(impl_->previous);
  service::ConfigureLogging(false);
}

std::string CapturedLog::text() const {
  spdlog::default_logger()->flush();
  return impl_->text.str();
}

InProcessServer::InProcessServer(const std::string& config_yaml, service::DetectorFactory detectors) {
  service::ServerConfig config;
  try {
    config = service::ServerConfig::FromText(config_yaml, "test config", DETR_TEST_OUTPUT_DIR);
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what();
    return;
  }
  Start(std::move(config), std::move(detectors));
}

InProcessServer::InProcessServer(service::ServerConfig config, service::DetectorFactory detectors) {
  Start(std::move(config), std::move(detectors));
}

void InProcessServer::Start(service::ServerConfig config, service::DetectorFactory detectors) {
  ConfigureProcessOnce();
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "127.0.0.1:0";
  config.http_listen = "127.0.0.1:0";
  auto server = service::Server::Start(config, std::move(detectors));
  if (!server.ok()) {
    ADD_FAILURE() << "the server did not start: " << server.status().message();
    return;
  }
  server_ = std::move(*server);
  target_ = "127.0.0.1:" + std::to_string(server_->ports().grpc);
  metrics_ = "127.0.0.1:" + std::to_string(server_->ports().metrics);
  http_ = "127.0.0.1:" + std::to_string(server_->ports().http);
}

absl::Status InProcessServer::Reload(const std::string& config_yaml) {
  auto config = service::ServerConfig::FromText(config_yaml, "test config", DETR_TEST_OUTPUT_DIR);
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "127.0.0.1:0";
  config.http_listen = "127.0.0.1:0";
  return server_->Reload(config);
}

InProcessServer::~InProcessServer() { Stop(); }

void InProcessServer::Stop() {
  if (server_) server_->Shutdown();
  server_.reset();
}

ServerProcess::ServerProcess(const std::string& config_yaml, const std::string& name, ServerProcessOptions options) {
  const std::string dir = DETR_TEST_OUTPUT_DIR;
  config_path_ = config_yaml.empty() ? "" : dir + "/" + name + ".yaml";
  const std::string& config_path = config_path_;
  if (!config_yaml.empty()) std::ofstream(config_path) << config_yaml;
  log_path_ = dir + "/" + name + ".log";
  const std::string ports_path = dir + "/" + name + ".ports";
  std::remove(ports_path.c_str());
  // Built before fork: the child of a threaded process may not allocate.
  std::vector<std::string> args = {DETR_SERVER_BINARY, "--listen",    "127.0.0.1:0",  "--metrics-listen", "127.0.0.1:0",
                                   "--http-listen",    "127.0.0.1:0", "--ports-file", ports_path};
  if (!config_path.empty()) args.insert(args.end(), {"--config", config_path});  // else the built-in one
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    DieWithParent(parent);
    const int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::execv(DETR_SERVER_BINARY, argv.data());
    ::_exit(127);
  }
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < give_up) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream log(log_path_);
      std::stringstream text;
      text << log.rdbuf();
      ADD_FAILURE() << "detr-server exited during start-up:\n" << text.str();
      return;
    }
    if (target_.empty()) ReadPorts(ports_path);
    if (!target_.empty() && Serving(target_, options.credentials)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ADD_FAILURE() << "detr-server did not become healthy within 60 s";
  Stop();
}

void ServerProcess::ReadPorts(const std::string& ports_path) {
  std::ifstream in(ports_path);
  if (!in) return;  // not written yet: the server is still loading
  const auto ports = nlohmann::json::parse(in, nullptr, false);
  if (ports.is_discarded()) return;
  target_ = "127.0.0.1:" + std::to_string(ports.value("grpc", 0));
  metrics_ = "127.0.0.1:" + std::to_string(ports.value("metrics", 0));
  http_ = "127.0.0.1:" + std::to_string(ports.value("http", 0));
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    EXPECT_EQ(Stop(), 0) << "detr-server did not exit cleanly on SIGTERM";
  }
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > give_up) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::unique_ptr<v1::Detector::Stub> ServerEndpoints::Stub() const {
  grpc::ChannelArguments arguments;
  arguments.SetMaxSendMessageSize(256 << 20);
  return v1::Detector::NewStub(grpc::CreateCustomChannel(target_, grpc::InsecureChannelCredentials(), arguments));
}

std::string ServerEndpoints::ScrapeMetrics() const { return HttpGet(metrics_, "/metrics"); }

double ServerEndpoints::Metric(const std::string& series) const {
  std::istringstream lines(ScrapeMetrics());
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

}  // namespace detr::testing
