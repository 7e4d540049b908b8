// detr-client bench: N concurrent workers send Detect requests, bounded by a
// request count or a duration, optionally at a fixed total rate; a live
// progress line, then latency percentiles, throughput and errors per code.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <grpcpp/support/status_code_enum.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "client/commands.h"
#include "client/latency_stats.h"
#include "server/types/status_code_name.h"

namespace detr::client {
namespace {

using Clock = std::chrono::steady_clock;

// The images as requests carry them: encoded as read, or (raw) decoded here
// into RGB pixels, which spares the server its decode for larger messages.
std::vector<v1::Image> LoadImages(const std::vector<std::string>& paths, bool raw) {
  std::vector<std::string> images;
  for (const auto& path : ExpandImagePaths(paths)) images.push_back(ReadFileBytes(path));
  if (images.empty()) {  // a generated image: a few flat shapes on grey
    cv::Mat image(480, 640, CV_8UC3, cv::Scalar(200, 200, 200));
    cv::circle(image, {200, 180}, 90, cv::Scalar(40, 40, 220), cv::FILLED);
    cv::rectangle(image, {330, 220}, {560, 420}, cv::Scalar(210, 90, 40), cv::FILLED);
    std::vector<unsigned char> png;
    cv::imencode(".png", image, png);
    images.emplace_back(png.begin(), png.end());
  }
  std::vector<v1::Image> requests(images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    if (!raw) {
      requests[i].set_encoded(images[i]);
      continue;
    }
    cv::Mat rgb =
        cv::imdecode(cv::Mat(1, static_cast<int>(images[i].size()), CV_8U, images[i].data()), cv::IMREAD_COLOR);
    if (rgb.empty()) throw std::runtime_error("bench --raw: an image cannot be decoded");
    cv::cvtColor(rgb, rgb, cv::COLOR_BGR2RGB);
    auto* pixels = requests[i].mutable_raw();
    pixels->set_rgb(std::string(reinterpret_cast<const char*>(rgb.data), rgb.total() * 3));
    pixels->set_width(static_cast<uint32_t>(rgb.cols));
    pixels->set_height(static_cast<uint32_t>(rgb.rows));
  }
  return requests;
}

struct Tally {
  std::mutex mutex;
  std::vector<double> latencies;                        // successful requests; guarded by mutex
  std::map<std::string, std::vector<double>> by_model;  // guarded by mutex
  std::map<std::string, int> codes;                     // guarded by mutex
  // From each successful response's server-side timings, in the order of
  // `latencies`; guarded by mutex.
  std::vector<double> preprocess, inference;
};

// Each request's latency minus the forward pass that served it: what serving
// adds (transport, decode, queue, postprocess). Taken per request, it is
// unaffected by the forward pass's speed drifting during a run.
std::vector<double> LatencyBeyondInference(const Tally& tally) {
  std::vector<double> beyond(tally.latencies.size());
  for (std::size_t i = 0; i < beyond.size(); ++i) beyond[i] = tally.latencies[i] - tally.inference[i];
  return beyond;
}

// One worker: sends requests until the count or the deadline is reached,
// each at its slot of the fixed rate when one is set.
void SendRequests(const ClientOptions& client, const BenchCommand& command, const std::vector<v1::Image>& images,
                  const std::shared_ptr<grpc::Channel>& channel, Clock::time_point start, Clock::time_point stop_at,
                  std::atomic<int64_t>& issued, std::atomic<int64_t>& done, Tally& tally) {
  auto stub = v1::Detector::NewStub(channel);
  while (true) {
    const int64_t index = issued.fetch_add(1);
    if (command.requests > 0 && index >= command.requests) return;
    if (command.rate > 0) {  // request i goes out at start + i / rate
      std::this_thread::sleep_until(start +
                                    std::chrono::microseconds(static_cast<int64_t>(index * 1e6 / command.rate)));
    }
    if (Clock::now() >= stop_at) return;
    v1::DetectRequest request;
    *request.mutable_image() = images[static_cast<size_t>(index) % images.size()];
    request.set_model(command.model);
    request.set_routing_key("bench-" + std::to_string(index));
    v1::DetectResponse response;
    auto context = MakeContext(client);
    const auto sent = Clock::now();
    const auto status = stub->Detect(context.get(), request, &response);
    const double seconds = std::chrono::duration<double>(Clock::now() - sent).count();
    {
      std::lock_guard<std::mutex> lock(tally.mutex);
      tally.codes[StatusCodeName(status.error_code())]++;
      if (status.ok()) {
        tally.latencies.push_back(seconds);
        tally.by_model[response.model()].push_back(seconds);
        tally.preprocess.push_back(response.timings().preprocess_seconds());
        tally.inference.push_back(response.timings().inference_seconds());
      }
    }
    done.fetch_add(1);
  }
}

// Runs the workers, with a live progress line on a terminal; the seconds they took.
double RunWorkers(const ClientOptions& client, const BenchCommand& command, const std::vector<v1::Image>& images,
                  std::atomic<int64_t>& done, Tally& tally) {
  auto channel = MakeChannel(client);
  std::atomic<int64_t> issued{0};
  const auto start = Clock::now();
  const auto stop_at = command.duration > 0
                           ? start + std::chrono::microseconds(static_cast<int64_t>(command.duration * 1e6))
                           : Clock::time_point::max();
  std::vector<std::thread> workers;
  for (int i = 0; i < std::max(1, command.concurrency); ++i) {
    workers.emplace_back([&] { SendRequests(client, command, images, channel, start, stop_at, issued, done, tally); });
  }
  std::atomic<bool> finished{false};
  const bool shown = ProgressShown();
  std::thread progress([&] {
    while (shown && !finished.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      std::fprintf(stderr, "\r[bench] %lld%s done in %.1f s, %.1f req/s   ", static_cast<long long>(done.load()),
                   command.requests > 0 ? ("/" + std::to_string(command.requests)).c_str() : "", elapsed,
                   done.load() / std::max(elapsed, 1e-9));
    }
    if (shown) std::fprintf(stderr, "\n");
  });
  for (auto& w : workers) w.join();
  // Stop the clock before joining the progress thread, which sleeps in steps.
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  finished.store(true);
  progress.join();
  return elapsed;
}

nlohmann::json Report(const Tally& tally, int64_t requests, double elapsed) {
  const auto all = Summarize(tally.latencies);
  nlohmann::json report = {
      {"requests", requests},
      {"seconds", elapsed},
      {"throughput_per_second", all.count / elapsed},
      {"latency_seconds", {{"p50", all.p50}, {"p90", all.p90}, {"p99", all.p99}, {"max", all.max}}},
      {"codes", tally.codes},
      {"server_p50_seconds",
       {{"preprocess", Summarize(tally.preprocess).p50},
        {"inference", Summarize(tally.inference).p50},
        {"latency_minus_inference", Summarize(LatencyBeyondInference(tally)).p50}}}};
  for (const auto& [model, latencies] : tally.by_model) {
    const auto s = Summarize(latencies);
    report["models"][model] = {{"requests", s.count}, {"p50", s.p50}, {"p90", s.p90}, {"p99", s.p99}};
  }
  return report;
}

void PrintReport(const nlohmann::json& report) {
  const auto& latency = report["latency_seconds"];
  std::printf("requests %lld in %.2f s: %.2f req/s\n", report["requests"].get<long long>(),
              report["seconds"].get<double>(), report["throughput_per_second"].get<double>());
  std::printf("latency p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms\n", latency["p50"].get<double>() * 1e3,
              latency["p90"].get<double>() * 1e3, latency["p99"].get<double>() * 1e3,
              latency["max"].get<double>() * 1e3);
  const auto& server = report["server_p50_seconds"];
  std::printf("server-side p50: preprocess %.1f ms, inference %.1f ms; latency minus inference p50 %.1f ms\n",
              server["preprocess"].get<double>() * 1e3, server["inference"].get<double>() * 1e3,
              server["latency_minus_inference"].get<double>() * 1e3);
  for (const auto& [code, count] : report["codes"].items()) std::printf("  %-20s %d\n", code.c_str(), count.get<int>());
  if (!report.contains("models")) return;
  for (const auto& [model, stats] : report["models"].items()) {
    std::printf("  model %-16s %4d requests, p50 %.1f ms, p99 %.1f ms\n", model.c_str(), stats["requests"].get<int>(),
                stats["p50"].get<double>() * 1e3, stats["p99"].get<double>() * 1e3);
  }
}

}  // namespace

int RunBench(const ClientOptions& client, const BenchCommand& command) {
  if (command.requests <= 0 && command.duration <= 0) {
    std::cerr << "bench: give --requests N or --duration S\n";
    return 2;
  }
  const auto images = LoadImages(command.images, command.raw);
  Tally tally;
  std::atomic<int64_t> done{0};
  const double elapsed = RunWorkers(client, command, images, done, tally);
  const auto report = Report(tally, done.load(), elapsed);
  if (command.json) {
    std::cout << report.dump() << "\n";
  } else {
    PrintReport(report);
  }
  return tally.codes.size() == 1 && tally.codes.count("OK") ? 0 : 1;
}

}  // namespace detr::client
