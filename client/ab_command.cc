// detr-client ab: the same images through two models, side by side: latency,
// server-side inference time and memory, and how far the detections agree.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "client/commands.h"
#include "client/latency_stats.h"
#include "server/types/detection_agreement.h"

namespace detr::client {
namespace {

struct Arm {
  std::vector<double> latency, inference, memory;
};

}  // namespace

int RunAb(const ClientOptions& client, const AbCommand& command) {
  auto stub = v1::Detector::NewStub(MakeChannel(client));
  Arm a, b;
  std::vector<double> agreement;
  for (const auto& file : ExpandImagePaths(command.images)) {
    const auto bytes = ReadFileBytes(file);
    for (int r = 0; r < std::max(1, command.repeats); ++r) {
      v1::DetectResponse responses[2];
      for (int side = 0; side < 2; ++side) {
        v1::DetectRequest request;
        request.mutable_image()->set_encoded(bytes);
        request.set_model(side == 0 ? command.model_a : command.model_b);
        request.set_score_threshold(command.threshold);
        auto context = MakeContext(client);
        const auto sent = std::chrono::steady_clock::now();
        const auto status = stub->Detect(context.get(), request, &responses[side]);
        if (!status.ok()) {
          std::cerr << "ab: " << file << " on " << request.model() << ": " << status.error_message() << "\n";
          return 1;
        }
        auto& arm = side == 0 ? a : b;
        arm.latency.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count());
        arm.inference.push_back(responses[side].timings().inference_seconds());
        arm.memory.push_back(static_cast<double>(responses[side].inference_memory_bytes()));
      }
      agreement.push_back(DetectionAgreement(ToDetections(responses[0]), ToDetections(responses[1])));
    }
  }
  if (agreement.empty()) {
    std::cerr << "ab: no images\n";
    return 2;
  }
  const auto la = Summarize(a.latency), lb = Summarize(b.latency);
  const auto ia = Summarize(a.inference), ib = Summarize(b.inference);
  const auto ma = Summarize(a.memory), mb = Summarize(b.memory);
  const double agreement_f1 = Summarize(agreement).mean;
  if (command.json) {
    const auto arm = [](const LatencySummary& latency, const LatencySummary& inference, const LatencySummary& memory) {
      return nlohmann::json{{"latency_seconds", {{"p50", latency.p50}, {"p99", latency.p99}}},
                            {"inference_seconds_p50", inference.p50},
                            {"inference_memory_bytes_mean", memory.mean}};
    };
    std::cout << nlohmann::json{{"model_a", command.model_a},
                                {"model_b", command.model_b},
                                {"a", arm(la, ia, ma)},
                                {"b", arm(lb, ib, mb)},
                                {"b_over_a",
                                 {{"latency_p50", lb.p50 / la.p50},
                                  {"latency_p99", lb.p99 / la.p99},
                                  {"inference_p50", ib.p50 / ia.p50},
                                  {"inference_memory_mean", mb.mean / std::max(ma.mean, 1.0)}}},
                                {"agreement_f1", agreement_f1},
                                {"score_threshold", command.threshold},
                                {"images", agreement.size()}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::printf("%-28s %16s %16s %8s\n", "", command.model_a.c_str(), command.model_b.c_str(), "B/A");
  std::printf("%-28s %13.1f ms %13.1f ms %8.2f\n", "latency p50 (client)", la.p50 * 1e3, lb.p50 * 1e3, lb.p50 / la.p50);
  std::printf("%-28s %13.1f ms %13.1f ms %8.2f\n", "latency p99 (client)", la.p99 * 1e3, lb.p99 * 1e3, lb.p99 / la.p99);
  std::printf("%-28s %13.1f ms %13.1f ms %8.2f\n", "inference p50 (server)", ia.p50 * 1e3, ib.p50 * 1e3,
              ib.p50 / ia.p50);
  std::printf("%-28s %13.1f MB %13.1f MB %8.2f\n", "inference memory (mean)", ma.mean / 1e6, mb.mean / 1e6,
              mb.mean / std::max(ma.mean, 1.0));
  std::printf("%-28s %16.3f  (F1 at IoU 0.5, same class, score >= %.2f; %zu images)\n", "detection agreement",
              agreement_f1, command.threshold, agreement.size());
  return 0;
}

}  // namespace detr::client
