// The request pipeline with fake detectors (no LibTorch): validation codes,
// routing, bounded admission, a failure at every stage becoming that
// request's INTERNAL status while the pipeline keeps serving, draining, and
// metrics recorded once per request; and the HTTP front end's bounded parse
// pool in front of it.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <memory>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "server/service/access/bearer_tokens.h"
#include "server/service/oip/inference_http_endpoint.h"
#include "server/service/pipeline/last_resort.h"
#include "server/service/pipeline/request_pipeline.h"
#include "tests/service/fake_detector.h"

namespace detr::service {
namespace {

using namespace std::chrono_literals;

const char* kConfig =
    "models:\n"
    "  - {name: a, architecture: {backbone: resnet18}, preprocessing: {shortest_edge: 32, longest_edge: 64},"
    " batching: {max_queue_delay_ms: 1}}\n"
    "  - {name: b, architecture: {backbone: resnet18}, preprocessing: {canvas: [32, 32]},"
    " batching: {max_queue_delay_ms: 1}}\n"
    "experiments:\n"
    "  - {name: shadow, kind: shadow, primary: a, arms: [{model: a}, {model: b}]}\n";

std::string Png(int width = 40, int height = 30) {
  cv::Mat image(height, width, CV_8UC3, cv::Scalar(250, 250, 250));
  std::vector<unsigned char> bytes;
  cv::imencode(".png", image, bytes);
  return {bytes.begin(), bytes.end()};
}

DetectInput Input(std::string model = "a", std::string encoded = Png()) {
  DetectInput input;
  input.model = std::move(model);
  input.image.kind = ImageInput::Kind::kEncoded;
  input.image.bytes = std::move(encoded);
  return input;
}

class RequestPipelineTest : public ::testing::Test {
 protected:
  // A pipeline over kConfig's models, each a FakeDetector (kept in fakes_).
  std::unique_ptr<RequestPipeline> MakePipeline(PipelineOptions options = {}) {
    auto config = ServerConfig::FromText(kConfig, "test", ".");
    auto models = std::make_shared<const ModelSet>(
        config,
        [this](const ModelEntry& entry) {
          auto fake = std::make_unique<testing::FakeDetector>(entry.config);
          fakes_.push_back(fake.get());
          return fake;
        },
        metrics_);
    return std::make_unique<RequestPipeline>(options, metrics_, models);
  }

  static absl::StatusOr<DetectResult> Run(RequestPipeline& pipeline, DetectInput input,
                                          std::shared_ptr<const CallState> call = nullptr) {
    std::promise<absl::StatusOr<DetectResult>> answered;
    auto answer = answered.get_future();
    pipeline.Run(std::move(input), std::move(call),
                 [&answered](absl::StatusOr<DetectResult> result) { answered.set_value(std::move(result)); });
    return answer.get();
  }

  double Requests(const std::string& model, absl::StatusCode code) {
    return metrics_.ForModel(model, "").RecordedRequests(code);
  }

  Metrics metrics_;
  std::vector<testing::FakeDetector*> fakes_;
};

TEST_F(RequestPipelineTest, AnswersWithTheModelsDetectionsAndMeasurements) {
  auto pipeline = MakePipeline();
  auto input = Input();
  input.request_id = "r-1";
  auto result = Run(*pipeline, std::move(input));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->model, "a");
  EXPECT_EQ(result->request_id, "r-1");
  EXPECT_EQ(result->image_width, 40);
  EXPECT_EQ(result->image_height, 30);
  EXPECT_EQ(result->batch_size, 1);
  EXPECT_GT(result->timings.preprocess, 0);
  ASSERT_EQ(result->detections.size(), 1u);
  EXPECT_EQ(result->detections[0].box[2], 40);  // boxes in the original image's pixels
  EXPECT_EQ(result->attention.encoder_self, "softmax");
  EXPECT_EQ(Requests("a", absl::StatusCode::kOk), 1);
}

TEST_F(RequestPipelineTest, BadRequestsGetPreciseCodesAndAreCountedOnce) {
  auto pipeline = MakePipeline();
  auto code = [&](DetectInput input) { return Run(*pipeline, std::move(input)).status().code(); };
  EXPECT_EQ(code(Input("a", "")), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Input("a", "not an image")), absl::StatusCode::kInvalidArgument);
  auto no_image = Input();
  no_image.image.kind = ImageInput::Kind::kMissing;
  EXPECT_EQ(code(no_image), absl::StatusCode::kInvalidArgument);
  auto threshold = Input();
  threshold.options.score_threshold = 1.5f;
  EXPECT_EQ(code(threshold), absl::StatusCode::kInvalidArgument);
  auto raw = Input();
  raw.image = {ImageInput::Kind::kRaw, std::string(47, '\0'), 4, 4};
  EXPECT_EQ(code(raw), absl::StatusCode::kInvalidArgument);
  raw.image.bytes.resize(48);
  EXPECT_EQ(code(raw), absl::StatusCode::kOk);
  auto long_id = Input();
  long_id.request_id.assign(300, 'x');
  EXPECT_EQ(code(long_id), absl::StatusCode::kInvalidArgument);
  // Found by fuzzing: a PNG header whose two sides overflow their product,
  // and formats whose size cannot be read before decoding (OpenCV's TIFF
  // decoder would allocate whatever the header claims).
  const std::string huge_png("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\xff\xff\xff\xff\xff\xff\xff\xff\x08\x02\0\0\0", 33);
  const auto huge = Run(*pipeline, Input("a", huge_png)).status();
  EXPECT_EQ(huge.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(huge.message().find("outside the server's limit"), absl::string_view::npos) << huge;
  std::vector<unsigned char> tiff;
  cv::imencode(".tiff", cv::Mat(8, 8, CV_8UC3, cv::Scalar(1, 2, 3)), tiff);
  const auto refused = Run(*pipeline, Input("a", std::string(tiff.begin(), tiff.end()))).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("not JPEG, PNG, BMP or WebP"), absl::string_view::npos) << refused;
  EXPECT_EQ(code(Input("no-such-model")), absl::StatusCode::kNotFound);
  EXPECT_EQ(Requests("a", absl::StatusCode::kInvalidArgument), 8);  // each counted once, under the name it gave
  EXPECT_EQ(Requests("unknown", absl::StatusCode::kNotFound), 1);
}

// A failing forward pass becomes that request's INTERNAL status, and the
// pipeline answers the next request as well.
TEST_F(RequestPipelineTest, AFailingForwardPassBecomesInternal) {
  auto pipeline = MakePipeline();
  fakes_.back()->set_fail(true);  // model b's forward pass
  const auto failed = Run(*pipeline, Input("b")).status();
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal);
  EXPECT_NE(failed.message().find("model 'b' failed"), absl::string_view::npos) << failed;
  fakes_.back()->set_fail(false);
  EXPECT_TRUE(Run(*pipeline, Input("b")).ok());
}

// The net under every step: whatever a step throws is a bug, answered
// INTERNAL with the stage named, never INVALID_ARGUMENT (not the client's
// fault, whatever the exception's type).
TEST(LastResortTest, AnExceptionOfAnyKindBecomesInternal) {
  EXPECT_TRUE(LastResort("a step", [] {}).ok());
  const auto invalid = LastResort("preprocessing", [] { throw std::invalid_argument("bad precondition"); });
  EXPECT_EQ(invalid.code(), absl::StatusCode::kInternal);
  EXPECT_NE(invalid.message().find("internal error in preprocessing"), absl::string_view::npos) << invalid;
  EXPECT_NE(invalid.message().find("bad precondition"), absl::string_view::npos) << invalid;
  EXPECT_EQ(LastResort("a step", [] { throw std::bad_alloc(); }).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(LastResort("a step", [] { throw 42; }).code(), absl::StatusCode::kInternal);
}

// The shadow arm runs off the response path: its failure is counted under
// the shadow model, and the primary answers as if it had not happened.
TEST_F(RequestPipelineTest, AFailingShadowArmLeavesThePrimarysAnswer) {
  auto pipeline = MakePipeline();
  fakes_.back()->set_fail(true);  // model b, the shadow arm
  auto result = Run(*pipeline, Input("shadow"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->model, "a");
  EXPECT_EQ(result->experiment, "shadow");
  const auto counted = std::chrono::steady_clock::now() + 5s;  // the shadow answers on its own time
  while (Requests("b", absl::StatusCode::kInternal) < 1 && std::chrono::steady_clock::now() < counted) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(Requests("b", absl::StatusCode::kInternal), 1);

  auto healthy = MakePipeline();
  ASSERT_TRUE(Run(*healthy, Input("shadow")).ok());
  const auto give_up = std::chrono::steady_clock::now() + 5s;
  while (metrics_.ShadowAgreement("shadow").Collect().histogram.sample_count < 1 &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(metrics_.ShadowAgreement("shadow").Collect().histogram.sample_count, 1u);
}

TEST_F(RequestPipelineTest, AdmissionIsBoundedAndEveryRequestIsAnswered) {
  PipelineOptions options;
  options.preprocess_threads = 1;
  options.max_preprocessing = 2;
  auto pipeline = MakePipeline(options);
  // 36 megapixels: a decode of ~100 ms holds the one preprocessing thread
  // while the 20 requests arrive (well under a millisecond).
  const std::string big = Png(6000, 6000);
  std::vector<std::future<absl::StatusOr<DetectResult>>> answers;
  std::vector<std::shared_ptr<std::promise<absl::StatusOr<DetectResult>>>> promises;
  for (int i = 0; i < 20; ++i) {
    promises.push_back(std::make_shared<std::promise<absl::StatusOr<DetectResult>>>());
    answers.push_back(promises.back()->get_future());
    pipeline->Run(Input("a", big), nullptr, [promise = promises.back()](absl::StatusOr<DetectResult> result) {
      promise->set_value(std::move(result));
    });
  }
  std::multiset<absl::StatusCode> codes;
  for (auto& answer : answers) codes.insert(answer.get().status().code());
  EXPECT_GE(codes.count(absl::StatusCode::kOk), 2u);
  EXPECT_GE(codes.count(absl::StatusCode::kResourceExhausted), 10u);
  EXPECT_EQ(codes.count(absl::StatusCode::kOk) + codes.count(absl::StatusCode::kResourceExhausted), 20u);
}

TEST(AdmissionTest, BoundsRequestsAndBytesAndReturnsTheirPlaces) {
  Admission admission(/*max_requests=*/2, /*max_bytes=*/100);
  auto first = admission.TryAdmit(60);
  ASSERT_TRUE(first);
  EXPECT_FALSE(admission.TryAdmit(50)) << "60 + 50 bytes are over 100";
  auto second = admission.TryAdmit(40);
  ASSERT_TRUE(second);
  EXPECT_FALSE(admission.TryAdmit(0)) << "two requests are in";
  first->Release();
  EXPECT_TRUE(admission.TryAdmit(50));
  second.reset();
  // Alone, a request larger than the byte bound is still admitted.
  EXPECT_TRUE(admission.TryAdmit(1000));
}

TEST_F(RequestPipelineTest, CancelledRequestsAreAnsweredAsCancelled) {
  auto pipeline = MakePipeline();
  auto call = std::make_shared<CallState>();
  call->Cancel();
  EXPECT_EQ(Run(*pipeline, Input(), call).status().code(), absl::StatusCode::kCancelled);
}

TEST_F(RequestPipelineTest, ADrainingPipelineRefusesNewRequests) {
  auto pipeline = MakePipeline();
  pipeline->StartDraining();
  EXPECT_EQ(Run(*pipeline, Input()).status().code(), absl::StatusCode::kUnavailable);
}

// The HTTP status code curl got for `args` (0 when it failed to connect).
int CurlStatus(const std::string& args) {
  FILE* pipe = ::popen(("curl -s -o /dev/null --max-time 30 -w '%{http_code}' " + args).c_str(), "r");
  char buffer[16] = {};
  const std::size_t n = std::fread(buffer, 1, sizeof(buffer) - 1, pipe);
  ::pclose(pipe);
  return n > 0 ? std::atoi(buffer) : 0;
}

// Inference bodies are parsed off the HTTP threads, on a pool whose waiting
// bodies are bounded in bytes: past the bound a request gets 429 at once,
// recorded like any refusal, and the front end keeps serving.
TEST_F(RequestPipelineTest, HttpFrontEndRefusesBodiesPastItsParseBound) {
  auto pipeline = MakePipeline();
  const AccessControl open{BearerTokens()};
  InferenceHttpOptions options;
  options.listen = "127.0.0.1:0";
  options.max_parsing_bytes = 4096;
  InferenceHttpEndpoint endpoint(options, *pipeline, open);
  const std::string url = "http://127.0.0.1:" + std::to_string(endpoint.port());
  const std::string small = ::testing::TempDir() + "/small.png", large = ::testing::TempDir() + "/large.png";
  cv::Mat noise(120, 160, CV_8UC3);
  cv::randu(noise, cv::Scalar::all(0), cv::Scalar::all(255));
  ASSERT_TRUE(cv::imwrite(large, noise));
  std::ofstream(small, std::ios::binary) << Png();
  ASSERT_LT(Png().size(), 4096u);

  EXPECT_EQ(CurlStatus("-H 'Content-Type: image/png' --data-binary @" + small + " " + url + "/v2/models/a/infer"), 200);
  EXPECT_EQ(CurlStatus("-H 'Content-Type: image/png' --data-binary @" + large + " " + url + "/v2/models/a/infer"), 429);
  EXPECT_EQ(Requests("a", absl::StatusCode::kResourceExhausted), 1);
  EXPECT_EQ(CurlStatus(url + "/v2/health/ready"), 200);
  EXPECT_EQ(CurlStatus("-H 'Content-Type: image/png' --data-binary @" + small + " " + url + "/v2/models/a/infer"), 200)
      << "the bound is released once a body is parsed";
}

}  // namespace
}  // namespace detr::service
