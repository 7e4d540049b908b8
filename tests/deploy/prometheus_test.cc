// Debian's real Prometheus, with the project's own config and rules, scraping
// a real detr-server under A/B traffic from detr-client bench: every PromQL
// expression of the Grafana dashboard and of the recording rules must return
// data for both attention variants.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include <chrono>
#include <filesystem>
#include <cmath>
#include <iomanip>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "tests/service/test_servers.h"

namespace detr::testing {
namespace {

const std::string kSource = DETR_SOURCE_DIR;
const std::string kOut = DETR_TEST_OUTPUT_DIR;

std::string ServerConfigYaml() {
  const std::string arch =
      "{backbone: resnet18, hidden_dim: 32, nheads: 4, enc_layers: 1, dec_layers: 1, "
      "dim_feedforward: 64, num_queries: 5, num_classes: 91}";
  const std::string rest =
      ", preprocessing: {shortest_edge: 64, longest_edge: 96}, batching: {max_batch_size: 4, max_queue_delay_ms: 5}}\n";
  return "intra_op_threads: 1\npreprocess_threads: 1\ndefault_route: ab\nmodels:\n"
         "  - {name: alpha, architecture: " +
         arch + rest + "  - {name: beta, architecture: " + arch +
         ", attention: {encoder.self: optimization, decoder.self: optimization, "
         "decoder.cross: optimization}" +
         rest +
         "experiments:\n"
         "  - {name: ab, kind: split, arms: [{model: alpha, weight: 0.5}, {model: beta, weight: 0.5}]}\n"
         "  - {name: shadow, kind: shadow, primary: alpha, arms: [{model: alpha}, {model: beta}]}\n";
}

// The project's prometheus.yml, pointed at the test's server, scraping every second.
std::string PrometheusConfig(const std::string& target) {
  YAML::Node config = YAML::LoadFile(kSource + "/deploy/prometheus/prometheus.yml");
  config["global"]["scrape_interval"] = "1s";
  config["global"]["evaluation_interval"] = "1s";
  YAML::Node rules;
  for (const auto& file : config["rule_files"])
    rules.push_back(kSource + "/deploy/prometheus/" + file.as<std::string>());
  config["rule_files"] = rules;
  YAML::Node targets;
  targets.push_back(target);
  config["scrape_configs"][0]["static_configs"][0]["targets"] = targets;
  YAML::Emitter out;
  out << config;
  return out.c_str();
}

std::string UrlEncode(const std::string& text) {
  std::ostringstream out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out << c;
    else
      out << '%' << std::uppercase << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(c) << std::dec;
  }
  return out.str();
}

class PrometheusProcess {
 public:
  explicit PrometheusProcess(const std::string& config_path) {
    std::filesystem::remove_all(kOut + "/prometheus-data");  // no series from an earlier run
    std::filesystem::remove(kOut + "/prometheus.log");       // nor an earlier run's port
    const std::string storage = "--storage.tsdb.path=" + kOut + "/prometheus-data";
    const std::string config = "--config.file=" + config_path;
    // Port 0: Prometheus logs the port it bound ('msg="Listening on" address=127.0.0.1:N').
    const std::string listen = "--web.listen-address=127.0.0.1:0";
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      DieWithParent(parent);
      const int log = open((kOut + "/prometheus.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(log, 1);
      dup2(log, 2);
      execlp("prometheus", "prometheus", config.c_str(), storage.c_str(), listen.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~PrometheusProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool WaitReady() {
    for (int i = 0; i < 150; ++i) {
      if (address_.empty()) address_ = BoundAddress();
      if (!address_.empty() && HttpGet(address_, "/-/ready").find("Ready") != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  }
  nlohmann::json Query(const std::string& expr) const {
    const auto body = HttpGet(address_, "/api/v1/query?query=" + UrlEncode(expr));
    return body.empty() ? nlohmann::json() : nlohmann::json::parse(body, nullptr, false);
  }

 private:
  // The address in Prometheus's "Listening on" log line; empty until it is there.
  static std::string BoundAddress() {
    std::ifstream log(kOut + "/prometheus.log");
    const std::string marker = "msg=\"Listening on\" address=";
    for (std::string line; std::getline(log, line);) {
      const auto at = line.find(marker);
      if (at != std::string::npos)
        return line.substr(at + marker.size(), line.find(' ', at + marker.size()) - at - marker.size());
    }
    return "";
  }

  std::string address_;
  pid_t pid_ = -1;
};

std::vector<std::string> DashboardExpressions() {
  std::ifstream in(kSource + "/deploy/grafana/dashboards/detr-serve.json");
  auto dashboard = nlohmann::json::parse(in);
  std::vector<std::string> exprs;
  for (const auto& panel : dashboard["panels"]) {
    for (const auto& target : panel["targets"]) exprs.push_back(target["expr"].get<std::string>());
  }
  return exprs;
}

std::vector<std::pair<std::string, std::string>> RecordingRules() {
  std::vector<std::pair<std::string, std::string>> rules;
  auto file = YAML::LoadFile(kSource + "/deploy/prometheus/rules/detr-recording.yml");
  for (const auto& group : file["groups"]) {
    for (const auto& rule : group["rules"])
      rules.emplace_back(rule["record"].as<std::string>(), rule["expr"].as<std::string>());
  }
  return rules;
}

// Grafana's interval variables, as Grafana would fill them at a 1 s scrape.
std::string ForPrometheus(std::string expr) {
  return std::regex_replace(expr, std::regex("\\$__rate_interval"), "30s");
}

void ExpectBothVariants(const PrometheusProcess& prometheus, const std::string& expr) {
  auto response = prometheus.Query(ForPrometheus(expr));
  ASSERT_EQ(response.value("status", ""), "success") << expr << "\n" << response.dump();
  const auto& result = response["data"]["result"];
  ASSERT_FALSE(result.empty()) << "no data: " << expr;
  std::set<std::string> models, attentions;
  for (const auto& series : result) {
    const auto& metric = series["metric"];
    if (metric.contains("model")) models.insert(metric["model"].get<std::string>());
    if (metric.contains("attention")) attentions.insert(metric["attention"].get<std::string>());
    const auto value = series["value"][1].get<std::string>();
    EXPECT_NE(value, "NaN") << expr << " " << metric.dump();
  }
  if (!models.empty()) {
    EXPECT_TRUE(models.count("alpha") && models.count("beta")) << expr << " models: " << result.dump();
  }
  if (!attentions.empty()) {
    EXPECT_TRUE(attentions.count("softmax") && attentions.count("optimization")) << expr;
  }
}

TEST(PrometheusTest, EveryDashboardAndRecordingExpressionReturnsDataForBothVariants) {
  if (system("command -v prometheus > /dev/null") != 0) GTEST_SKIP() << "prometheus is not installed";
  ServerProcess server(ServerConfigYaml(), "prometheus-target");
  ASSERT_GT(server.pid(), 0);
  const std::string config_path = kOut + "/prometheus.yml";
  std::ofstream(config_path) << PrometheusConfig(server.metrics_address());
  PrometheusProcess prometheus(config_path);
  ASSERT_TRUE(prometheus.WaitReady()) << "see " << kOut << "/prometheus.log";

  // A/B traffic through the default route, plus failures and shadow requests on both sides.
  const std::string bench = std::string(DETR_CLIENT_BINARY) + " --target " + server.target() +
                            " bench --concurrency 2 --duration 12 > " + kOut + "/bench.log 2>&1";
  ASSERT_EQ(std::system(bench.c_str()), 0) << "see " << kOut << "/bench.log";
  auto stub = server.Stub();
  for (const std::string model : {"alpha", "beta"}) {
    for (int i = 0; i < 3; ++i) {
      v1::DetectRequest request;
      request.set_model(model);  // no image: INVALID_ARGUMENT, counted for the model
      grpc::ClientContext context;
      v1::DetectResponse response;
      EXPECT_EQ(stub->Detect(&context, request, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    }
  }
  const std::string shadow = std::string(DETR_CLIENT_BINARY) + " --target " + server.target() +
                             " bench --concurrency 1 --requests 3 --model shadow > /dev/null 2>&1";
  ASSERT_EQ(std::system(shadow.c_str()), 0);
  std::this_thread::sleep_for(std::chrono::seconds(4));  // a few more scrapes and rule evaluations

  for (const auto& expr : DashboardExpressions()) ExpectBothVariants(prometheus, expr);
  for (const auto& [record, expr] : RecordingRules()) {
    SCOPED_TRACE(record);
    ExpectBothVariants(prometheus, expr);
    ExpectBothVariants(prometheus, record);  // and Prometheus itself recorded it
  }
}

TEST(DashboardTest, ReferencesOnlyMetricsTheServerExportsOrTheRulesRecord) {
  ServerProcess server(ServerConfigYaml(), "dashboard-metrics");
  ASSERT_GT(server.pid(), 0);
  auto stub = server.Stub();
  {  // a shadow request makes every family appear
    v1::DetectRequest request;
    std::ifstream png(kSource + "/deploy/samples/shapes.png", std::ios::binary);
    request.mutable_image()->set_encoded(std::string(std::istreambuf_iterator<char>(png), {}));
    request.set_model("shadow");
    grpc::ClientContext context;
    v1::DetectResponse response;
    ASSERT_TRUE(stub->Detect(&context, request, &response).ok());
  }
  std::set<std::string> exported;
  for (int attempt = 0; attempt < 50 && !exported.count("detr_shadow_agreement"); ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::istringstream lines(server.ScrapeMetrics());
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("# TYPE ", 0) == 0) exported.insert(line.substr(7, line.find(' ', 7) - 7));
    }
  }
  std::set<std::string> recorded;
  for (const auto& [record, expr] : RecordingRules()) recorded.insert(record);
  const std::regex metric("\\b(detr_[a-z_]+|process_[a-z_]+|detr:[a-z0-9_:]+)");
  for (const auto& expr : DashboardExpressions()) {
    for (std::sregex_iterator it(expr.begin(), expr.end(), metric), end; it != end; ++it) {
      std::string name = it->str();
      if (name.rfind("detr:", 0) == 0) {
        EXPECT_TRUE(recorded.count(name)) << name << " is not a recording rule";
        continue;
      }
      name = std::regex_replace(name, std::regex("_(bucket|sum|count)$"), "");
      EXPECT_TRUE(exported.count(name)) << name << " (in " << expr << ") is not exported by detr-server";
    }
  }
}

}  // namespace
}  // namespace detr::testing
