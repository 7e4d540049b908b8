// Reloading the configuration without losing a request: in process under a
// steady load (new, changed and removed models; a failing reload), and the
// binary on SIGHUP.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "tests/service/test_servers.h"

namespace detr::testing {
namespace {

using namespace std::chrono_literals;

std::string Model(const std::string& name, int seed, int delay_ms = 2) {
  return "  - {name: " + name +
         ", architecture: {backbone: resnet18, hidden_dim: 32, nheads: 4, enc_layers: 1, dec_layers: 1, "
         "dim_feedforward: 64, num_queries: 5, num_classes: 91}, random_seed: " +
         std::to_string(seed) +
         ", preprocessing: {shortest_edge: 64, longest_edge: 96}, batching: {max_queue_delay_ms: " +
         std::to_string(delay_ms) + "}}\n";
}

std::string Png(int seed) {
  cv::Mat image(48, 64, CV_8UC3, cv::Scalar(seed * 40 % 256, 90, 160));
  std::vector<unsigned char> bytes;
  cv::imencode(".png", image, bytes);
  return {bytes.begin(), bytes.end()};
}

// Clients that send requests to the default route until stopped, counting
// answers by status code and by the model that served them.
class SteadyLoad {
 public:
  SteadyLoad(const ServerEndpoints& server, int clients) {
    for (int c = 0; c < clients; ++c) {
      threads_.emplace_back([this, &server, c] {
        auto stub = server.Stub();
        const auto image = Png(c);
        while (!stop_) {
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + 20s);
          v1::DetectRequest request;
          request.mutable_image()->set_encoded(image);
          v1::DetectResponse response;
          const auto status = stub->Detect(&context, request, &response);
          std::lock_guard<std::mutex> lock(mutex_);
          ++codes_[status.error_code()];
          if (status.ok()) ++models_[response.model()];
          else last_error_ = status.error_message();
        }
      });
    }
  }
  ~SteadyLoad() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }
  std::map<grpc::StatusCode, int> codes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return codes_;
  }
  std::map<std::string, int> models() {
    std::lock_guard<std::mutex> lock(mutex_);
    return models_;
  }
  std::string last_error() {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_error_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::map<grpc::StatusCode, int> codes_;  // guarded by mutex_
  std::map<std::string, int> models_;      // guarded by mutex_
  std::string last_error_;                 // guarded by mutex_
};

std::set<std::string> ListedModels(const ServerEndpoints& server) {
  grpc::ClientContext context;
  v1::ListModelsResponse response;
  std::set<std::string> names;
  if (server.Stub()->ListModels(&context, {}, &response).ok()) {
    for (const auto& model : response.models()) names.insert(model.name());
  }
  return names;
}

TEST(HotReloadTest, ReloadsUnderLoadWithoutLosingARequest) {
  const std::string first = "models:\n" + Model("alpha", 3);
  InProcessServer server(first);
  ASSERT_TRUE(server.ok());
  SteadyLoad load(server, 3);
  std::this_thread::sleep_for(500ms);

  // A new model and an experiment over both become the default route.
  const std::string second = "models:\n" + Model("alpha", 3) + Model("beta", 4) +
                             "experiments:\n  - {name: ab, kind: split, arms: [{model: alpha}, {model: beta}]}\n"
                             "default_route: ab\n";
  ASSERT_TRUE(server.Reload(second).ok());
  std::this_thread::sleep_for(800ms);
  EXPECT_EQ(ListedModels(server), (std::set<std::string>{"alpha", "beta"}));

  // A reload that fails (weights that are not a weights file) keeps the
  // current configuration serving.
  const std::string broken = std::string(DETR_TEST_OUTPUT_DIR) + "/broken.safetensors";
  std::ofstream(broken) << "not a safetensors file";
  const auto failed =
      server.Reload("models:\n  - {name: gamma, architecture: {backbone: resnet18}, weights: " + broken + "}\n");
  EXPECT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("gamma"), absl::string_view::npos) << failed;
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(ListedModels(server), (std::set<std::string>{"alpha", "beta"}));

  // beta goes, alpha changes (its batching): it is loaded anew.
  ASSERT_TRUE(server.Reload("models:\n" + Model("alpha", 3, /*delay_ms=*/5)).ok());
  std::this_thread::sleep_for(500ms);
  load.Stop();

  const auto codes = load.codes();
  EXPECT_EQ(codes.size(), 1u) << "a request failed during a reload: " << load.last_error();
  EXPECT_GT(codes.count(grpc::StatusCode::OK) ? codes.at(grpc::StatusCode::OK) : 0, 30);
  EXPECT_GT(load.models()["beta"], 0) << "the reloaded experiment never routed to the new model";
  EXPECT_EQ(ListedModels(server), (std::set<std::string>{"alpha"}));
}

// The binary reloads its config file on SIGHUP.
TEST(HotReloadTest, SighupReloadsTheConfigFile) {
  ServerProcess server("models:\n" + Model("alpha", 3), "SighupReloadsTheConfigFile");
  ASSERT_GT(server.pid(), 0);
  EXPECT_EQ(ListedModels(server), (std::set<std::string>{"alpha"}));
  std::ofstream(server.config_path()) << "models:\n" + Model("alpha", 3) + Model("beta", 4);
  ASSERT_EQ(::kill(server.pid(), SIGHUP), 0);
  const auto give_up = std::chrono::steady_clock::now() + 30s;
  while (ListedModels(server).size() < 2 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(ListedModels(server), (std::set<std::string>{"alpha", "beta"}));
}

}  // namespace
}  // namespace detr::testing
