// detr-server against clients that misbehave: streams that end while their
// frames are still queued, clients that vanish mid-stream. The real binary on
// 127.0.0.1, real gRPC connections; each round opens a connection of its own
// and drops it, as a remote client would.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/service/test_servers.h"

namespace detr::testing {
namespace {

// A small model whose queue holds frames for a while (100 ms), so that a
// stream's later frames are still queued when its failed frame ends it.
std::string Config() {
  return "intra_op_threads: 1\npreprocess_threads: 2\n"
         "models:\n"
         "  - {name: slow_queue, architecture: {backbone: resnet18, hidden_dim: 32, nheads: 4, enc_layers: 1, "
         "dec_layers: 1, dim_feedforward: 64, num_queries: 5, num_classes: 91}, random_seed: 3, "
         "preprocessing: {shortest_edge: 64, longest_edge: 96}, "
         "batching: {max_batch_size: 4, max_queue_delay_ms: 100, queue_capacity: 256}}\n";
}

std::string Png(int seed) {
  std::mt19937 rng(static_cast<unsigned>(seed));
  cv::Mat image(64, 80, CV_8UC3, cv::Scalar(rng() % 256, rng() % 256, rng() % 256));
  cv::circle(image, {40, 32}, 12, cv::Scalar(rng() % 256, rng() % 256, rng() % 256), cv::FILLED);
  std::vector<unsigned char> bytes;
  cv::imencode(".png", image, bytes);
  return std::string(bytes.begin(), bytes.end());
}

v1::DetectRequest Frame(const std::string& encoded) {
  v1::DetectRequest request;
  request.mutable_image()->set_encoded(encoded);
  return request;
}

// A connection of its own: a channel argument no other channel has keeps
// gRPC from sharing a subchannel, so that dropping the channel closes the
// TCP connection, as a client process that exits does.
std::unique_ptr<v1::Detector::Stub> OwnConnection(const std::string& target, int round) {
  grpc::ChannelArguments arguments;
  arguments.SetInt("detr.test.connection", round);
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return v1::Detector::NewStub(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), arguments));
}

bool Healthy(const ServerEndpoints& server) {
  auto health =
      grpc::health::v1::Health::NewStub(grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  return health->Check(&context, request, &response).ok() &&
         response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

grpc::StatusCode DetectOnce(const ServerEndpoints& server) {
  auto stub = server.Stub();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::DetectResponse response;
  return stub->Detect(&context, Frame(Png(1)), &response).error_code();
}

class HostileClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<InProcessServer>(Config());
    ASSERT_TRUE(server_->ok());
  }
  // The server is alive, healthy and serves (a crash would have ended this
  // process; the ASan build of this test also sees bad memory accesses).
  void ExpectStillServing() {
    EXPECT_TRUE(Healthy(*server_)) << "the server stopped answering health checks";
    EXPECT_EQ(DetectOnce(*server_), grpc::StatusCode::OK);
  }
  std::unique_ptr<InProcessServer> server_;
};

// The sequence that crashed the server (a stream's queued frames held a
// pointer to its finished call): a good frame, and once it is answered an
// undecodable frame and another good frame; the client drops its connection
// as soon as the stream's INVALID_ARGUMENT arrives, while the last frame is
// still queued.
TEST_F(HostileClientTest, StreamEndedByABadFrameWhileFramesAreQueued) {
  constexpr int kRounds = 150;
  const std::string good = Png(2);
  int invalid = 0;
  for (int round = 0; round < kRounds; ++round) {
    auto stub = OwnConnection(server_->target(), round);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    auto stream = stub->DetectStream(&context);
    v1::DetectResponse response;
    ASSERT_TRUE(stream->Write(Frame(good)));
    ASSERT_TRUE(stream->Read(&response)) << "round " << round;  // the first frame is answered
    stream->Write(Frame("not an image"));
    stream->Write(Frame(good));
    while (stream->Read(&response)) {
    }
    const auto status = stream->Finish();
    invalid += status.error_code() == grpc::StatusCode::INVALID_ARGUMENT;
  }  // the channel, and with it the connection, goes here
  EXPECT_EQ(invalid, kRounds);
  ExpectStillServing();
}

// A client that vanishes mid-stream with frames queued: it writes a burst of
// frames and drops the call and its connection without waiting for any answer.
TEST_F(HostileClientTest, ClientVanishesMidStreamWithFramesQueued) {
  constexpr int kRounds = 150;
  const std::string good = Png(3);
  for (int round = 0; round < kRounds; ++round) {
    auto stub = OwnConnection(server_->target(), round);
    grpc::ClientContext context;
    auto stream = stub->DetectStream(&context);
    for (int frame = 0; frame < 1 + round % 6; ++frame) stream->Write(Frame(good));
    if (round % 2) std::this_thread::sleep_for(std::chrono::milliseconds(round % 40));
    context.TryCancel();
    stream->Finish();
  }
  ExpectStillServing();
}

// One long string must not poison a connection: a 100 KB model name (or
// request id, or routing key) gets INVALID_ARGUMENT at once with a short
// message, the same connection keeps working, and the log stays small.
TEST_F(HostileClientTest, LongStringsAreRefusedWithShortMessages) {
  const CapturedLog log;
  auto stub = server_->Stub();
  const std::string huge(100 * 1024, 'm');
  const auto started = std::chrono::steady_clock::now();
  for (int field = 0; field < 3; ++field) {
    auto request = Frame(Png(4));
    if (field == 0) request.set_model(huge);
    if (field == 1) request.set_request_id(huge);
    if (field == 2) request.set_routing_key(huge);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(8));
    v1::DetectResponse response;
    const auto status = stub->Detect(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << "field " << field;
    EXPECT_LT(status.error_message().size(), 200u) << status.error_message().substr(0, 300);
    EXPECT_NE(status.error_message().find("the limit is 256"), std::string::npos) << status.error_message();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));

  // A made-up name within the limit: NOT_FOUND, echoed shortened and escaped.
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(8));
  v1::DetectResponse response;
  auto request = Frame(Png(4));
  const std::string made_up = std::string(200, 'x') + "\n\"level\":\"critical\"";
  request.set_model(made_up);
  const auto status = stub->Detect(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(status.error_message().find("(" + std::to_string(made_up.size()) + " bytes)"), std::string::npos)
      << status.error_message();
  EXPECT_LT(status.error_message().size(), 200u);

  // The same connection still answers.
  grpc::ClientContext again;
  again.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  EXPECT_TRUE(stub->Detect(&again, Frame(Png(5)), &response).ok());
  EXPECT_LT(log.text().size(), 4000u) << "the log carries the client's strings:\n" << log.text().substr(0, 2000);
  EXPECT_NE(log.text().find("INVALID_ARGUMENT"), std::string::npos) << log.text();
}

// JSON logs stay one valid JSON object per line, whatever a client puts in
// its request id or model name: quotes, newlines, forged fields, bytes that
// are not UTF-8.
TEST_F(HostileClientTest, JsonLogLinesStayValidWithHostileStrings) {
  const CapturedLog log(/*json=*/true);
  auto stub = server_->Stub();
  // (proto3 strings must be UTF-8: gRPC refuses other bytes before they
  // reach the server; the log's own handling of them is checked below.)
  const std::vector<std::string> hostile = {"\"}\n{\"level\":\"critical\",\"message\":\"forged",
                                            "id\\\"with\\backslashes\"", "tab\tand\rreturn\u2028",
                                            "\u00e9t\u00e9 \U0001F600"};
  for (const auto& text : hostile) {
    for (bool as_model : {false, true}) {
      auto request = Frame("not an image");
      (as_model ? request.mutable_model() : request.mutable_request_id())->assign(text);
      grpc::ClientContext context;
      v1::DetectResponse response;
      EXPECT_FALSE(stub->Detect(&context, request, &response).ok());
    }
  }
  std::istringstream lines(log.text());
  std::string line;
  int failures = 0;
  while (std::getline(lines, line)) {
    const auto parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(parsed.is_object()) << "not a JSON object: " << line;
    EXPECT_EQ(parsed.size(), 3u) << line;
    EXPECT_NE(parsed.value("level", ""), "critical") << line;
    failures += parsed.value("message", "").find("failed") != std::string::npos;
  }
  EXPECT_EQ(failures, 8) << log.text();
}

TEST(JsonLogTest, BytesThatAreNotUtf8StillMakeAValidLine) {
  const CapturedLog log(/*json=*/true);
  spdlog::warn("raw bytes: \xff\xfe\x80 and a \" quote");
  const auto parsed = nlohmann::json::parse(log.text(), nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(parsed.is_object()) << log.text();
  EXPECT_NE(parsed.value("message", "").find("\xef\xbf\xbd"), std::string::npos) << "U+FFFD replaces them";
  EXPECT_NE(parsed.value("message", "").find("\" quote"), std::string::npos);
}

// Made-up model names add no metric series: rejected requests count under
// one fixed label value.
TEST_F(HostileClientTest, MadeUpModelNamesAddNoMetricSeries) {
  auto stub = server_->Stub();
  auto send = [&](const std::string& model) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(8));
    v1::DetectResponse response;
    auto request = Frame("x");
    request.set_model(model);
    return stub->Detect(&context, request, &response).error_code();
  };
  send("warm-up");
  const auto lines = [&] {
    const auto text = server_->ScrapeMetrics();
    return std::count(text.begin(), text.end(), '\n');
  };
  const auto before = lines();
  for (int i = 0; i < 50; ++i) EXPECT_EQ(send("made-up-" + std::to_string(i)), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(lines(), before);
  EXPECT_EQ(server_->Metric("detr_requests_total{code=\"NOT_FOUND\",model=\"unknown\"}"), 51);
  ExpectStillServing();
}

}  // namespace
}  // namespace detr::testing
