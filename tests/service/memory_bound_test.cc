// What no client can grow: resident memory over thousands of junk requests
// and over bursts at four times what the server admits, and the number of
// metric series. A real Server in this process (the resident memory is this
// process's), real gRPC clients on 127.0.0.1.
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "tests/service/test_servers.h"

namespace detr::testing {
namespace {

double ResidentBytes() {
  long pages_total = 0, pages_resident = 0;
  std::ifstream("/proc/self/statm") >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

std::string Encoded(int width, int height, int seed, const std::string& extension = ".png") {
  std::mt19937 rng(static_cast<unsigned>(seed));
  cv::Mat image(height, width, CV_8UC3, cv::Scalar(rng() % 256, rng() % 256, rng() % 256));
  cv::circle(image, {width / 2, height / 2}, height / 4, cv::Scalar(rng() % 256, 0, 0), cv::FILLED);
  std::vector<unsigned char> bytes;
  cv::imencode(extension, image, bytes);
  return {bytes.begin(), bytes.end()};
}

std::string Config(int queue_capacity = 64) {
  return "preprocess_threads: 2\nlimits: {max_preprocessing: 8, max_preprocessing_bytes: 16777216}\n"
         "models:\n  - {name: alpha, architecture: {backbone: resnet18, hidden_dim: 32, nheads: 4, enc_layers: 1, "
         "dec_layers: 1, dim_feedforward: 64, num_queries: 5, num_classes: 91}, random_seed: 3, "
         "preprocessing: {shortest_edge: 64, longest_edge: 96}, batching: {max_batch_size: 4, max_queue_delay_ms: 5, "
         "queue_capacity: " +
         std::to_string(queue_capacity) + "}}\n";
}

// Sends `requests` from `clients` threads; counts the answers by code.
std::map<grpc::StatusCode, int> Send(const ServerEndpoints& server, const std::vector<v1::DetectRequest>& requests,
                                     int clients) {
  std::atomic<std::size_t> next{0};
  std::vector<std::future<std::map<grpc::StatusCode, int>>> workers;
  for (int c = 0; c < clients; ++c) {
    workers.push_back(std::async(std::launch::async, [&] {
      auto stub = server.Stub();
      std::map<grpc::StatusCode, int> codes;
      for (std::size_t i = next++; i < requests.size(); i = next++) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        v1::DetectResponse response;
        ++codes[stub->Detect(&context, requests[i], &response).error_code()];
      }
      return codes;
    }));
  }
  std::map<grpc::StatusCode, int> codes;
  for (auto& worker : workers) {
    for (const auto& [code, count] : worker.get()) codes[code] += count;
  }
  return codes;
}

std::size_t SeriesCount(const ServerEndpoints& server) {
  const auto text = server.ScrapeMetrics();
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

TEST(MemoryBoundTest, FiveThousandJunkRequestsLeaveMemoryAndMetricsFlat) {
  InProcessServer server(Config());
  ASSERT_TRUE(server.ok());
  auto png = Encoded(32, 32, 4);
  png.replace(16, 8, std::string("\0\0\x75\x30\0\0\x75\x30", 8));  // a PNG that claims 30000 x 30000
  const auto jpeg = Encoded(120, 90, 3, ".jpg");
  std::vector<v1::DetectRequest> junk;
  auto request = [&](std::string bytes, std::string model = "", std::string id = "") {
    v1::DetectRequest r;
    r.mutable_image()->set_encoded(std::move(bytes));
    r.set_model(std::move(model));
    r.set_request_id(std::move(id));
    return r;
  };
  for (int i = 0; i < 5000; ++i) {
    switch (i % 7) {
      case 0: junk.push_back(request(std::string(5000, 'x'))); break;
      case 1: junk.push_back(request(jpeg.substr(0, jpeg.size() / 2))); break;
      case 2: junk.push_back(request(png)); break;
      case 3: junk.push_back(request(jpeg, "made-up-" + std::to_string(i))); break;
      case 4: junk.push_back(request(jpeg, "", std::string(1000 + i, 'i'))); break;
      case 5: {
        auto raw = request("");
        raw.mutable_image()->mutable_raw()->set_width(100);
        raw.mutable_image()->mutable_raw()->set_height(100);
        raw.mutable_image()->mutable_raw()->set_rgb(std::string(29999, '\0'));
        junk.push_back(raw);
        break;
      }
      default: junk.push_back(request("")); break;
    }
  }
  Send(server, std::vector<v1::DetectRequest>(junk.begin(), junk.begin() + 700), 4);  // warm-up: pools, arenas
  const double before = ResidentBytes();
  const auto series_before = SeriesCount(server);
  const auto codes = Send(server, junk, 4);
  const double after = ResidentBytes();
  EXPECT_EQ(codes.count(grpc::StatusCode::OK), 0u);
  int answered = 0;
  for (const auto& [code, count] : codes) answered += count;
  EXPECT_EQ(answered, 5000);
  EXPECT_LT(after - before, 8.0 * (1 << 20)) << "resident memory grew from " << before << " to " << after;
  EXPECT_EQ(SeriesCount(server), series_before) << "junk requests added metric series";
}

// Bursts of 4x what the server admits at once (8 in preprocessing + 8 queued):
// the excess is refused at once, and repeated bursts leave resident memory
// where the first ones did.
TEST(MemoryBoundTest, BurstsAtFourTimesCapacityLeaveMemoryFlat) {
  InProcessServer server(Config(/*queue_capacity=*/8));
  ASSERT_TRUE(server.ok());
  constexpr int kBurst = 4 * (8 + 8);
  std::vector<v1::DetectRequest> burst;
  for (int i = 0; i < kBurst; ++i) {
    v1::DetectRequest r;
    r.mutable_image()->set_encoded(Encoded(1600, 1200, i));  // 5.8 MB of pixels each once decoded
    burst.push_back(r);
  }
  std::vector<double> resident;
  std::map<grpc::StatusCode, int> codes;
  for (int round = 0; round < 5; ++round) {
    for (const auto& [code, count] : Send(server, burst, kBurst)) codes[code] += count;
    resident.push_back(ResidentBytes());
  }
  EXPECT_GT(codes[grpc::StatusCode::OK], 0);
  EXPECT_GT(codes[grpc::StatusCode::RESOURCE_EXHAUSTED], 0) << "nothing was refused: the bound was never reached";
  EXPECT_EQ(codes[grpc::StatusCode::OK] + codes[grpc::StatusCode::RESOURCE_EXHAUSTED], 5 * kBurst);
  // After two bursts (allocator and thread caches warm), no more growth.
  EXPECT_LT(resident[4], resident[1] * 1.05 + 4.0 * (1 << 20))
      << "resident memory after bursts 2..5: " << resident[1] << " " << resident[2] << " " << resident[3] << " "
      << resident[4];
}

}  // namespace
}  // namespace detr::testing
