// detr-server end to end: a real Server in this process on 127.0.0.1 (and the
// real binary where process behaviour is tested), real gRPC calls, real
// PNG/JPEG bytes, its real /metrics.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <tuple>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/command_run.h"
#include "tests/service/fake_detector.h"
#include "tests/service/test_servers.h"

namespace detr::testing {
namespace {

const char* kArchitecture =
    "{backbone: resnet18, hidden_dim: 32, nheads: 4, enc_layers: 1, dec_layers: 1, dim_feedforward: 64, "
    "num_queries: 5, num_classes: 91}";

std::string Config() {
  const std::string arch = kArchitecture;
  const std::string small = "preprocessing: {shortest_edge: 64, longest_edge: 128}\n";
  return "intra_op_threads: 2\npreprocess_threads: 2\nlimits: {max_message_bytes: 1048576, max_pixels: 4000000}\n"
         "default_route: alpha\nmodels:\n"
         "  - {name: alpha, architecture: " +
         arch + ", random_seed: 3, " + small.substr(0, small.size() - 1) +
         ", batching: {max_batch_size: 8, max_queue_delay_ms: 2}}\n"
         "  - {name: beta, architecture: " +
         arch +
         ", random_seed: 3, attention: {encoder.self: optimization, "
         "decoder.self: optimization, decoder.cross: optimization}, " +
         small.substr(0, small.size() - 1) +
         ", batching: {max_batch_size: 8, max_queue_delay_ms: 2}}\n"
         "  - {name: batchy, architecture: " +
         arch + ", random_seed: 3, " + small.substr(0, small.size() - 1) +
         ", batching: {max_batch_size: 8, max_queue_delay_ms: 1000}}\n"
         "  - {name: tiny_queue, architecture: " +
         arch +
         ", random_seed: 3, preprocessing: {shortest_edge: 700, "
         "longest_edge: 1000}, batching: {max_batch_size: 1, max_queue_delay_ms: 0, queue_capacity: 1}}\n"
         "experiments:\n"
         "  - {name: split, kind: split, arms: [{model: alpha, weight: 0.8}, {model: beta, weight: 0.2}]}\n"
         "  - {name: sticky, kind: sticky, arms: [{model: alpha, weight: 0.5}, {model: beta, weight: 0.5}]}\n"
         "  - {name: shadow, kind: shadow, primary: alpha, arms: [{model: alpha}, {model: beta}]}\n";
}

// A seeded image of flat shapes, encoded.
std::string MakeImage(int width, int height, int seed, const std::string& extension = ".png") {
  std::mt19937 rng(static_cast<unsigned>(seed));
  cv::Mat image(height, width, CV_8UC3, cv::Scalar(rng() % 256, rng() % 256, rng() % 256));
  for (int i = 0; i < 3; ++i) {
    cv::circle(image, {static_cast<int>(rng() % width), static_cast<int>(rng() % height)}, 5 + rng() % 20,
               cv::Scalar(rng() % 256, rng() % 256, rng() % 256), cv::FILLED);
  }
  std::vector<unsigned char> bytes;
  cv::imencode(extension, image, bytes);
  return std::string(bytes.begin(), bytes.end());
}

v1::DetectRequest Request(const std::string& bytes, const std::string& model = "") {
  v1::DetectRequest request;
  request.mutable_image()->set_encoded(bytes);
  request.set_model(model);
  return request;
}

grpc::Status Call(v1::Detector::Stub& stub, const v1::DetectRequest& request, v1::DetectResponse* response = nullptr,
                  int deadline_ms = 30000) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
  v1::DetectResponse scratch;
  return stub.Detect(&context, request, response ? response : &scratch);
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<InProcessServer>(Config());
    ASSERT_TRUE(server_->ok());
    stub_ = server_->Stub();
  }
  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<v1::Detector::Stub> stub_;
};

TEST_F(ServerTest, ResultsEqualDetrPredictForTheSameImageAndModel) {
  const std::string dir = DETR_TEST_OUTPUT_DIR;
  const auto png = MakeImage(96, 72, 1);
  std::ofstream(dir + "/same.png", std::ios::binary) << png;
  std::ofstream(dir + "/alpha.json")
      << "{\"backbone\": \"resnet18\", \"hidden_dim\": 32, \"nheads\": 4, \"enc_layers\": 1, "
         "\"dec_layers\": 1, \"dim_feedforward\": 64, \"num_queries\": 5, \"num_classes\": 91}";
  const std::string command =
      std::string(DETR_PREDICT_BINARY) + " --model-config " + dir + "/alpha.json --random-init 3 " + "--image " + dir +
      "/same.png --min-size 64 --max-size 128 --threshold 0 --json " + dir + "/same-predict.json 2>/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0);
  auto expected = nlohmann::json::parse(std::ifstream(dir + "/same-predict.json"))["detections"];

  v1::DetectResponse response;
  ASSERT_TRUE(Call(*stub_, Request(png, "alpha"), &response).ok());
  ASSERT_EQ(response.detections_size(), static_cast<int>(expected.size()));
  for (int i = 0; i < response.detections_size(); ++i) {
    const auto& got = response.detections(i);
    EXPECT_EQ(got.class_id(), expected[i]["class_id"].get<int>());
    EXPECT_NEAR(got.score(), expected[i]["score"].get<double>(), 1e-4);
    EXPECT_NEAR(got.box().x0(), expected[i]["box"][0].get<double>(), 1e-2);
    EXPECT_NEAR(got.box().y1(), expected[i]["box"][3].get<double>(), 1e-2);
  }
  EXPECT_EQ(response.model(), "alpha");
  EXPECT_EQ(response.attention().decoder_cross(), "softmax");
  EXPECT_EQ(response.image_width(), 96u);
  EXPECT_GT(response.inference_memory_bytes(), 0u);
  EXPECT_GT(response.timings().inference_seconds(), 0.0);
}

TEST_F(ServerTest, ConcurrentSameSizeRequestsAreBatchedWithUnbatchedResults) {
  constexpr int kRequests = 8;
  std::vector<std::string> images;
  for (int i = 0; i < kRequests; ++i) images.push_back(MakeImage(96, 72, 100 + i));
  std::vector<std::future<std::pair<grpc::Status, v1::DetectResponse>>> futures;
  for (int i = 0; i < kRequests; ++i) {
    futures.push_back(std::async(std::launch::async, [&, i] {
      auto stub = server_->Stub();
      v1::DetectResponse response;
      auto status = Call(*stub, Request(images[i], "batchy"), &response);
      return std::make_pair(status, response);
    }));
  }
  std::vector<v1::DetectResponse> batched;
  for (auto& f : futures) {
    auto [status, response] = f.get();
    ASSERT_TRUE(status.ok()) << status.error_message();
    batched.push_back(response);
  }
  EXPECT_GT(server_->Metric("detr_batch_size_sum{model=\"batchy\"}") /
                server_->Metric("detr_batch_size_count{model=\"batchy\"}"),
            1.0);
  int largest = 0;
  for (const auto& r : batched) largest = std::max<int>(largest, static_cast<int>(r.batch_size()));
  EXPECT_GT(largest, 1);
  // The same images one at a time through alpha (same architecture and seed).
  for (int i = 0; i < kRequests; ++i) {
    v1::DetectResponse single;
    auto request = Request(images[i], "alpha");
    ASSERT_TRUE(Call(*stub_, request, &single).ok());
    ASSERT_EQ(single.detections_size(), batched[i].detections_size());
    for (int d = 0; d < single.detections_size(); ++d) {
      EXPECT_NEAR(single.detections(d).score(), batched[i].detections(d).score(), 1e-4);
      EXPECT_NEAR(single.detections(d).box().x0(), batched[i].detections(d).box().x0(), 1e-2);
    }
  }
}

TEST_F(ServerTest, SplitExperimentFollowsItsWeights) {
  constexpr int kRequests = 200;
  const auto image = MakeImage(64, 64, 7);
  std::atomic<int> alpha{0}, beta{0}, failed{0}, next{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      auto stub = server_->Stub();
      while (next.fetch_add(1) < kRequests) {
        v1::DetectResponse response;
        if (!Call(*stub, Request(image, "split"), &response).ok()) {
          ++failed;
          continue;
        }
        (response.model() == "alpha" ? alpha : beta)++;
        EXPECT_EQ(response.experiment(), "split");
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(failed.load(), 0);
  // Binomial(200, 0.8): standard deviation 5.7; 4.5 of them is a 1-in-100000 failure.
  EXPECT_NEAR(alpha.load(), 160, 26) << "alpha " << alpha << " beta " << beta;
}

TEST_F(ServerTest, StickyRoutingIsSticky) {
  const auto image = MakeImage(64, 64, 8);
  std::set<std::string> models_for_key;
  for (int i = 0; i < 15; ++i) {
    auto request = Request(image, "sticky");
    request.set_routing_key("camera-7");
    v1::DetectResponse response;
    ASSERT_TRUE(Call(*stub_, request, &response).ok());
    models_for_key.insert(response.model());
  }
  EXPECT_EQ(models_for_key.size(), 1u);
  std::set<std::string> models_over_keys;
  for (int i = 0; i < 30; ++i) {
    auto request = Request(image, "sticky");
    request.set_routing_key("user-" + std::to_string(i));
    v1::DetectResponse response;
    ASSERT_TRUE(Call(*stub_, request, &response).ok());
    models_over_keys.insert(response.model());
  }
  EXPECT_EQ(models_over_keys.size(), 2u) << "30 keys all hashed to one arm";
}

TEST_F(ServerTest, ShadowAnswersFromPrimaryAndRecordsAgreement) {
  for (int i = 0; i < 4; ++i) {
    v1::DetectResponse response;
    ASSERT_TRUE(Call(*stub_, Request(MakeImage(64, 80, 20 + i), "shadow"), &response).ok());
    EXPECT_EQ(response.model(), "alpha");
    EXPECT_EQ(response.experiment(), "shadow");
  }
  const std::string series = "detr_shadow_agreement_count{experiment=\"shadow\"}";
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (server_->Metric(series) < 4 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(server_->Metric(series), 4);
  const double sum = server_->Metric("detr_shadow_agreement_sum{experiment=\"shadow\"}");
  EXPECT_GE(sum, 0.0);
  EXPECT_LE(sum, 4.0);
}

TEST_F(ServerTest, StreamKeepsItsOrder) {
  grpc::ClientContext context;
  auto stream = stub_->DetectStream(&context);
  constexpr int kFrames = 8;
  for (int i = 0; i < kFrames; ++i) {
    // Alternating sizes: frames run in different batches and finish out of order.
    auto request = Request(MakeImage(i % 2 ? 160 : 64, 64, 40 + i), i % 3 ? "alpha" : "beta");
    request.set_request_id("frame-" + std::to_string(i));
    ASSERT_TRUE(stream->Write(request));
  }
  stream->WritesDone();
  v1::DetectResponse response;
  int index = 0;
  while (stream->Read(&response)) {
    EXPECT_EQ(response.request_id(), "frame-" + std::to_string(index));
    ++index;
  }
  EXPECT_EQ(index, kFrames);
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServerTest, BadInputGetsPreciseCodesAndTheServerStaysHealthy) {
  using grpc::StatusCode;
  auto code_of = [&](const v1::DetectRequest& request) { return Call(*stub_, request).error_code(); };

  EXPECT_EQ(code_of(Request("")), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code_of(Request(std::string(5000, 'x'))), StatusCode::INVALID_ARGUMENT);
  auto jpeg = MakeImage(120, 90, 3, ".jpg");
  EXPECT_EQ(code_of(Request(jpeg.substr(0, jpeg.size() / 2))), StatusCode::INVALID_ARGUMENT);
  // A real PNG whose header claims 30000 x 30000: refused before decoding.
  auto png = MakeImage(32, 32, 4);
  const unsigned char huge[8] = {0, 0, 0x75, 0x30, 0, 0, 0x75, 0x30};
  png.replace(16, 8, reinterpret_cast<const char*>(huge), 8);
  grpc::ClientContext context;
  v1::DetectResponse response;
  auto status = stub_->Detect(&context, Request(png), &response);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("30000x30000"), std::string::npos) << status.error_message();

  v1::DetectRequest raw;
  raw.mutable_image()->mutable_raw()->set_width(0);
  raw.mutable_image()->mutable_raw()->set_height(0);
  EXPECT_EQ(code_of(raw), StatusCode::INVALID_ARGUMENT);
  raw.mutable_image()->mutable_raw()->set_width(4);
  raw.mutable_image()->mutable_raw()->set_height(4);
  raw.mutable_image()->mutable_raw()->set_rgb(std::string(47, '\0'));
  EXPECT_EQ(code_of(raw), StatusCode::INVALID_ARGUMENT);
  raw.mutable_image()->mutable_raw()->set_rgb(std::string(48, '\x80'));
  EXPECT_EQ(code_of(raw), StatusCode::OK);  // the same request, well-formed

  EXPECT_EQ(code_of(Request(MakeImage(64, 64, 5), "no-such-model")), StatusCode::NOT_FOUND);
  auto nan = Request(MakeImage(64, 64, 5));
  nan.set_score_threshold(std::nanf(""));
  EXPECT_EQ(code_of(nan), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code_of(Request(std::string(2 << 20, 'x'))), StatusCode::RESOURCE_EXHAUSTED);  // over 1 MiB

  // Still healthy and serving.
  auto health =
      grpc::health::v1::Health::NewStub(grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext health_context;
  grpc::health::v1::HealthCheckRequest health_request;
  grpc::health::v1::HealthCheckResponse health_response;
  ASSERT_TRUE(health->Check(&health_context, health_request, &health_response).ok());
  EXPECT_EQ(health_response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(code_of(Request(MakeImage(64, 64, 6))), StatusCode::OK);
}

TEST_F(ServerTest, FullQueueAnswersResourceExhaustedAndDeadlinesDropWork) {
  std::vector<std::future<grpc::StatusCode>> futures;
  for (int i = 0; i < 6; ++i) {
    futures.push_back(std::async(std::launch::async, [&, i] {
      auto stub = server_->Stub();
      return Call(*stub, Request(MakeImage(640, 480, 60 + i), "tiny_queue")).error_code();
    }));
  }
  std::map<grpc::StatusCode, int> codes;
  for (auto& f : futures) codes[f.get()]++;
  EXPECT_GE(codes[grpc::StatusCode::RESOURCE_EXHAUSTED], 1);
  EXPECT_GE(codes[grpc::StatusCode::OK], 1);

  // Occupy the worker, then queue a request whose deadline passes while it waits.
  auto busy = std::async(std::launch::async, [&] {
    auto stub = server_->Stub();
    return Call(*stub, Request(MakeImage(640, 480, 70), "tiny_queue")).error_code();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto expired = Call(*stub_, Request(MakeImage(640, 480, 71), "tiny_queue"), nullptr, /*deadline_ms=*/100);
  EXPECT_TRUE(expired.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
              expired.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  busy.get();
}

TEST_F(ServerTest, MetricsExposeEveryFamilyWithCountsEqualToRequests) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Call(*stub_, Request(MakeImage(64, 64, i), "alpha")).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Call(*stub_, Request(MakeImage(64, 64, i), "beta")).ok());
  ASSERT_EQ(Call(*stub_, Request("", "alpha")).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(server_->Metric("detr_request_duration_seconds_count{attention=\"softmax\",code=\"OK\",model=\"alpha\"}"),
            5);
  EXPECT_EQ(
      server_->Metric("detr_request_duration_seconds_count{attention=\"optimization\",code=\"OK\",model=\"beta\"}"), 3);
  EXPECT_EQ(server_->Metric("detr_requests_total{code=\"OK\",model=\"alpha\"}"), 5);
  EXPECT_EQ(server_->Metric("detr_requests_total{code=\"INVALID_ARGUMENT\",model=\"alpha\"}"), 1);
  for (const char* stage : {"queue", "inference", "postprocess", "preprocess"}) {
    EXPECT_EQ(
        server_->Metric(std::string("detr_stage_duration_seconds_count{model=\"alpha\",stage=\"") + stage + "\"}"), 5)
        << stage;
  }
  EXPECT_EQ(server_->Metric("detr_batch_size_sum{model=\"alpha\"}"), 5);
  EXPECT_EQ(server_->Metric("detr_inference_memory_bytes_count{model=\"beta\"}"), 3);
  EXPECT_GT(server_->Metric("detr_inference_memory_bytes_sum{model=\"beta\"}"), 0);
  EXPECT_EQ(server_->Metric("detr_queue_depth{model=\"alpha\"}"), 0);
  EXPECT_EQ(server_->Metric("detr_model_info{decoder_cross=\"optimization\",decoder_self=\"optimization\","
                            "encoder_self=\"optimization\",model=\"beta\",precision=\"float32\","
                            "random_weights=\"true\"}"),
            1);
  EXPECT_GT(server_->Metric("detr_model_parameters{model=\"alpha\"}"),
            server_->Metric("detr_model_parameters{model=\"beta\"}"));
  EXPECT_GT(server_->Metric("process_resident_memory_bytes"), 0);
  const auto text = server_->ScrapeMetrics();
  EXPECT_NE(
      text.find("detr_request_duration_seconds_bucket{attention=\"softmax\",code=\"OK\",model=\"alpha\",le=\"0.001\"}"),
      std::string::npos);
  // A family appears with its first series: the shadow histogram after a shadow request.
  ASSERT_TRUE(Call(*stub_, Request(MakeImage(64, 64, 9), "shadow")).ok());
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (server_->Metric("detr_shadow_agreement_count{experiment=\"shadow\"}") < 1 &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(server_->ScrapeMetrics().find("# TYPE detr_shadow_agreement histogram"), std::string::npos);
}

TEST_F(ServerTest, ListAndGetModelsDescribeModelsAndExperiments) {
  grpc::ClientContext context;
  v1::ListModelsResponse list;
  ASSERT_TRUE(stub_->ListModels(&context, v1::ListModelsRequest(), &list).ok());
  ASSERT_EQ(list.models_size(), 4);
  EXPECT_EQ(list.models(1).name(), "beta");
  EXPECT_EQ(list.models(1).attention().encoder_self(), "optimization");
  EXPECT_TRUE(list.models(1).random_weights());
  EXPECT_EQ(list.experiments_size(), 3);
  EXPECT_EQ(list.experiments(2).kind(), "shadow");
  grpc::ClientContext get_context;
  v1::GetModelRequest get;
  get.set_name("nope");
  v1::Model model;
  EXPECT_EQ(stub_->GetModel(&get_context, get, &model).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace detr::testing

namespace detr::testing {
namespace {

// A model whose forward pass fails (a FailingDetector around the real one,
// injected through the server's DetectorFactory), end to end: its requests
// get INTERNAL over gRPC, the other model keeps answering, and a failing
// shadow arm leaves the primary's answer and is counted under the shadow.
TEST(FailingModelTest, AFailingForwardPassBecomesInternalAndTheServerKeepsServing) {
  const std::string models =
      std::string("models:\n  - {name: alpha, architecture: ") + kArchitecture +
      ", random_seed: 3, preprocessing: {shortest_edge: 64, longest_edge: 128}}\n"
      "  - {name: beta, architecture: " +
      kArchitecture +
      ", random_seed: 4, "
      "preprocessing: {shortest_edge: 64, longest_edge: 128}}\n"
      "experiments:\n  - {name: shadow, kind: shadow, primary: alpha, arms: [{model: alpha}, {model: beta}]}\n";
  for (const std::string failing : {"alpha", "beta"}) {
    InProcessServer server(models, [failing](const service::ModelEntry& entry) -> std::unique_ptr<core::Detector> {
      auto real = LoadDetector(entry);
      if (entry.name == failing) return std::make_unique<FailingDetector>(std::move(real));
      return real;
    });
    ASSERT_TRUE(server.ok());
    auto stub = server.Stub();
    const std::string healthy = failing == "alpha" ? "beta" : "alpha";
    for (int i = 0; i < 2; ++i) {
      v1::DetectResponse response;
      const auto status = Call(*stub, Request(MakeImage(64, 64, i), failing), &response);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL) << failing;
      EXPECT_NE(status.error_message().find("model '" + failing + "' failed"), std::string::npos)
          << status.error_message();
      const auto served = Call(*stub, Request(MakeImage(64, 64, i), healthy), &response);
      EXPECT_TRUE(served.ok()) << served.error_message();
    }
    if (failing == "beta") {  // the shadow arm: the primary answers
      v1::DetectResponse response;
      const auto status = Call(*stub, Request(MakeImage(64, 64, 5), "shadow"), &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(response.model(), "alpha");
    }
    const std::string internal = "detr_requests_total{code=\"INTERNAL\",model=\"" + failing + "\"}";
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    const double expected = failing == "beta" ? 3 : 2;  // beta: twice its own, once as the shadow
    while (server.Metric(internal) < expected && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(server.Metric(internal), expected) << failing;
  }
}

// Runs the server binary to completion (it must fail at start-up).
std::pair<int, std::string> RunServerExpectingFailure(const std::string& yaml, const std::string& name) {
  const std::string dir = DETR_TEST_OUTPUT_DIR;
  const std::string path = dir + "/" + name + ".yaml";
  std::ofstream(path) << yaml;
  auto run = RunCommand(std::string(DETR_SERVER_BINARY) + " --config " + path +
                        " --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 2>&1");
  return {run.exit_code, std::move(run.output)};
}

// The reviewers' baselines run in the server like the other types, per
// site, and the answer says which attention each site ran.
TEST(BaselineAttentionTest, LinearAndPoolingSitesServe) {
  InProcessServer server(std::string("models:\n  - {name: baselines, architecture: ") + kArchitecture +
                         ", random_seed: 3, attention: {encoder.self: linear, decoder.self: pooling, "
                         "decoder.cross: linear}, preprocessing: {shortest_edge: 64, longest_edge: 128}}\n");
  ASSERT_TRUE(server.ok());
  auto stub = server.Stub();
  v1::DetectResponse response;
  const auto status = Call(*stub, Request(MakeImage(96, 64, 5), "baselines"), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.attention().encoder_self(), "linear");
  EXPECT_EQ(response.attention().decoder_self(), "pooling");
  EXPECT_EQ(response.attention().decoder_cross(), "linear");
  EXPECT_EQ(response.detections_size(), 5) << "one per query at threshold 0";
  for (const auto& d : response.detections()) EXPECT_TRUE(std::isfinite(d.score()) && d.box().x1() >= d.box().x0());
}

TEST(ServerStartupTest, AnswersVersion) {
  const auto run = RunCommand(DETR_SERVER_BINARY " --version 2>&1");
  const std::string version = run.output.substr(0, run.output.find('\n') + 1);
  EXPECT_EQ(version.rfind("detr-server ", 0), 0u) << version;
  EXPECT_GT(version.size(), std::string("detr-server \n").size()) << version;
  EXPECT_EQ(run.exit_code, 0);
}

TEST(ServerStartupTest, BadConfigOrWeightsStopStartUpWithAMessage) {
  auto [code, output] = RunServerExpectingFailure(
      "models: [{name: a, architecture: {backbone: resnet18}, "
      "batching: {queue_capacity: 0}}]",
      "bad-config");
  EXPECT_EQ(code, 1);
  EXPECT_NE(output.find("models[0].batching.queue_capacity' must be >= 1"), std::string::npos) << output;

  const std::string weights = std::string(DETR_TEST_OUTPUT_DIR) + "/corrupt.safetensors";
  std::ofstream(weights) << "\x10\0\0\0\0\0\0\0{\"x\": 1}";
  std::tie(code, output) = RunServerExpectingFailure(
      "models: [{name: a, architecture: {backbone: resnet18}, weights: " + weights + "}]", "bad-weights");
  EXPECT_EQ(code, 1);
  EXPECT_NE(output.find("model 'a' cannot be loaded"), std::string::npos) << output;
  EXPECT_NE(output.find(weights), std::string::npos) << output;
}

// Not a test on its own: the helper process of the next test. It starts a
// server, reports the server's pid on the file descriptor the next test
// names, and waits to be killed.
TEST(ServerProcessTest, HelperThatHoldsAServer) {
  const char* fd = std::getenv("DETR_HELPER_FD");
  if (fd == nullptr) GTEST_SKIP() << "runs only as the helper of ServerDiesWithTheTestThatStartedIt";
  ServerProcess server(Config(), "HelperThatHoldsAServer");
  const int pid = server.pid();
  ASSERT_EQ(::write(std::atoi(fd), &pid, sizeof pid), static_cast<ssize_t>(sizeof pid));
  std::this_thread::sleep_for(std::chrono::seconds(60));
}

bool ProcessIsGone(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_field, name, state;
  return !(stat >> pid_field >> name >> state) || state == "Z";  // a zombie runs no code
}

// A test killed as CTest kills one at its timeout takes its server with it.
TEST(ServerProcessTest, ServerDiesWithTheTestThatStartedIt) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t helper = ::fork();
  if (helper == 0) {
    ::close(fds[0]);
    ::setenv("DETR_HELPER_FD", std::to_string(fds[1]).c_str(), 1);
    const std::string self = "/proc/self/exe";
    ::execl(self.c_str(), self.c_str(), "--gtest_filter=ServerProcessTest.HelperThatHoldsAServer",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  int server_pid = -1;
  ASSERT_EQ(::read(fds[0], &server_pid, sizeof server_pid), static_cast<ssize_t>(sizeof server_pid));
  ::close(fds[0]);
  ASSERT_GT(server_pid, 0);
  EXPECT_FALSE(ProcessIsGone(server_pid));
  ::kill(helper, SIGKILL);
  ::waitpid(helper, nullptr, 0);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ProcessIsGone(server_pid) && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(ProcessIsGone(server_pid)) << "detr-server " << server_pid << " outlived the test that started it";
  if (!ProcessIsGone(server_pid)) ::kill(server_pid, SIGKILL);
}

}  // namespace
}  // namespace detr::testing
