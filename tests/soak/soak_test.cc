// The soak: detr-server on its built-in configuration (the two default models,
// as `make serve` runs them) held at twice the throughput it can sustain.
//
//   1. capacity: closed-loop requests at concurrency 8 for a tenth of the run
//      (at least 5 s) measure what the server sustains, C requests/s;
//   2. load: requests at 2C/s, open loop (sent on schedule whatever the
//      answers), each with a 2 s deadline, for SOAK_SECONDS;
//   3. checks: every answer is OK, RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED;
//      resident memory after the first fifth of the load (at least 10 s)
//      grows by at most 5%;
//      the p99 latency of admitted requests stays bounded: under the 2 s
//      deadline in every third of the load, and the last third's no more
//      than 1.5x the first's (a queue that only grows would show here).
//
// SOAK_SECONDS defaults to 30 (what `make test` runs); `make soak` runs 600.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <unordered_map>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "server/types/status_code_name.h"
#include "tests/service/test_servers.h"

namespace detr::testing {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

int SoakSeconds() {
  const char* value = std::getenv("SOAK_SECONDS");
  return value != nullptr ? std::max(10, std::atoi(value)) : 30;
}

v1::DetectRequest SampleRequest() {
  std::ifstream in(std::string(DETR_SOURCE_DIR) + "/deploy/samples/shapes.png", std::ios::binary);
  v1::DetectRequest request;
  request.mutable_image()->set_encoded(std::string(std::istreambuf_iterator<char>(in), {}));
  return request;
}

// Requests answered per second with `concurrency` closed-loop clients.
double MeasureCapacity(const ServerEndpoints& server, const v1::DetectRequest& request, Clock::duration duration) {
  std::atomic<int> answered{0};
  const auto end = Clock::now() + duration;
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&] {
      auto stub = server.Stub();
      while (Clock::now() < end) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + 10s);
        v1::DetectResponse response;
        answered += stub->Detect(&context, request, &response).ok();
      }
    });
  }
  const auto start = Clock::now();
  for (auto& client : clients) client.join();
  return answered / Seconds(Clock::now() - start);
}

// Open-loop load: a call every 1/rate seconds through gRPC's callback API.
class OpenLoop {
 public:
  OpenLoop(const ServerEndpoints& server, const v1::DetectRequest& request) : stub_(server.Stub()), request_(request) {}

  void Run(double rate, Clock::duration duration, const std::function<void(double elapsed)>& every_5s) {
    start_ = Clock::now();
    const auto start = start_;
    auto next_sample = start + 5s;
    for (long i = 0;; ++i) {
      const auto due = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(i / rate));
      if (due - start > duration) break;
      std::this_thread::sleep_until(due);
      if (Clock::now() >= next_sample) {
        every_5s(Seconds(Clock::now() - start));
        next_sample += 5s;
      }
      Send();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [this] { return outstanding_ == 0; });
  }

  std::map<std::string, long> codes() const { return codes_; }
  /// (seconds into the load when answered, latency) of every OK answer.
  std::vector<std::pair<double, double>> ok_latencies() const { return ok_latencies_; }

 private:
  struct Call {
    grpc::ClientContext context;
    v1::DetectResponse response;
    Clock::time_point start = Clock::now();
  };

  void Send() {
    auto call = std::make_shared<Call>();
    call->context.set_deadline(std::chrono::system_clock::now() + 2s);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++outstanding_;
    }
    // The callback must not destroy its own call (the ClientContext) while
    // gRPC is still inside it: the sending thread frees answered calls a
    // sweep later ("assertion failed: prior > 0" in gRPC's ref counts, once).
    Call* raw = call.get();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      calls_.emplace(raw, std::move(call));
      if (Clock::now() - last_sweep_ > 1s) {
        retired_.clear();          // answered more than a sweep ago
        retired_.swap(answered_);  // answered since the last sweep
        last_sweep_ = Clock::now();
      }
    }
    stub_->async()->Detect(&raw->context, &request_, &raw->response, [this, raw](grpc::Status status) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++codes_[StatusCodeName(status.error_code())];
      if (status.ok()) ok_latencies_.emplace_back(Seconds(Clock::now() - start_), Seconds(Clock::now() - raw->start));
      const auto it = calls_.find(raw);
      answered_.push_back(std::move(it->second));
      calls_.erase(it);
      if (--outstanding_ == 0) idle_.notify_all();
    });
  }

  std::unique_ptr<v1::Detector::Stub> stub_;
  const v1::DetectRequest request_;
  std::mutex mutex_;
  std::condition_variable idle_;
  Clock::time_point start_;
  long outstanding_ = 0;                                    // guarded by mutex_
  std::unordered_map<Call*, std::shared_ptr<Call>> calls_;  // in flight; guarded by mutex_
  std::vector<std::shared_ptr<Call>> answered_, retired_;   // guarded by mutex_
  Clock::time_point last_sweep_ = Clock::now();             // guarded by mutex_
  std::map<std::string, long> codes_;                       // guarded by mutex_
  std::vector<std::pair<double, double>> ok_latencies_;     // guarded by mutex_
};

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<std::size_t>(q * static_cast<double>(values.size())))];
}

TEST(SoakTest, TwiceTheCapacityLeavesMemoryFlatAndAnswersBounded) {
  const int seconds = SoakSeconds();
  ServerProcess server("", "soak");  // the built-in configuration
  ASSERT_GT(server.pid(), 0);
  const auto request = SampleRequest();
  const double capacity = MeasureCapacity(server, request, std::chrono::seconds(std::max(5, seconds / 10)));
  ASSERT_GT(capacity, 1.0);
  std::printf("soak: capacity %.1f requests/s; loading at %.1f/s for %d s\n", capacity, 2 * capacity, seconds);

  OpenLoop load(server, request);
  std::vector<std::pair<double, double>> resident;  // (seconds into the load, bytes)
  load.Run(2 * capacity, std::chrono::seconds(seconds), [&](double elapsed) {
    const double bytes = server.Metric("process_resident_memory_bytes");
    resident.emplace_back(elapsed, bytes);
    std::printf("soak: %5.0f s  resident %.1f MiB\n", elapsed, bytes / (1 << 20));
    std::fflush(stdout);
  });

  const auto codes = load.codes();
  long total = 0;
  for (const auto& [code, count] : codes) {
    total += count;
    std::printf("soak: %-20s %ld\n", code.c_str(), count);
    EXPECT_TRUE(code == "OK" || code == "RESOURCE_EXHAUSTED" || code == "DEADLINE_EXCEEDED") << code << ": " << count;
  }
  const auto answered = load.ok_latencies();
  std::vector<double> all, thirds[3];
  for (const auto& [when, latency] : answered) {
    all.push_back(latency);
    thirds[std::min(2, static_cast<int>(3 * when / seconds))].push_back(latency);
  }
  std::printf(
      "soak: %ld requests, %zu admitted and answered; their p50 %.0f ms, p99 %.0f ms; p99 by third of the "
      "run %.0f, %.0f, %.0f ms\n",
      total, all.size(), Percentile(all, 0.50) * 1e3, Percentile(all, 0.99) * 1e3, Percentile(thirds[0], 0.99) * 1e3,
      Percentile(thirds[1], 0.99) * 1e3, Percentile(thirds[2], 0.99) * 1e3);
  EXPECT_GT(all.size(), static_cast<std::size_t>(capacity * seconds / 2)) << "the server answered too few";
  for (const auto& third : thirds) EXPECT_LT(Percentile(third, 0.99), 2.0) << "p99 reached the deadline";
  EXPECT_LE(Percentile(thirds[2], 0.99), 1.5 * Percentile(thirds[0], 0.99))
      << "admitted requests waited longer and longer";

  // After a fifth of the run, and at least 10 s (caches, arenas, queues and
  // oneDNN's plans for batches of 1, 2, 4 and 8 warm), resident memory may
  // not grow by more than 5%.
  const double warm_up = std::max(10.0, seconds / 5.0);
  double at_warm_up = 0, highest = 0;
  for (const auto& [elapsed, bytes] : resident) {
    if (elapsed <= warm_up) at_warm_up = bytes;
    if (elapsed > warm_up) highest = std::max(highest, bytes);
  }
  ASSERT_GT(at_warm_up, 0);
  std::printf("soak: resident %.1f MiB after warm-up, at most %.1f MiB after (%+.1f%%)\n", at_warm_up / (1 << 20),
              highest / (1 << 20), 100 * (highest / at_warm_up - 1));
  EXPECT_LE(highest, at_warm_up * 1.05);
}

}  // namespace
}  // namespace detr::testing
