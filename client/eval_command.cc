// detr-client eval: every image of a COCO annotations file through the
// server, then COCO AP/AR (pycocotools' table); with two models, side by side
// with their latency.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "client/coco_eval.h"
#include "client/commands.h"
#include "client/latency_stats.h"

namespace detr::client {
namespace {

struct ModelRun {
  std::vector<CocoBox> detections;
  std::vector<double> latency;    // client-side, one request at a time
  std::vector<double> inference;  // the server's forward pass
  std::vector<double> memory;     // the server's inference memory, bytes
};

ModelRun RunModel(v1::Detector::Stub& stub, const ClientOptions& client, const EvalCommand& command,
                  const CocoDataset& dataset, const std::string& model) {
  ModelRun run;
  std::size_t done = 0;
  for (const auto& [file, image_id] : dataset.image_ids) {
    v1::DetectRequest request;
    request.mutable_image()->set_encoded(ReadFileBytes((std::filesystem::path(command.images) / file).string()));
    request.set_model(model);
    request.set_max_detections(100);  // COCO's maxDets; threshold 0: every detection counts
    v1::DetectResponse response;
    auto context = MakeContext(client);
    const auto sent = std::chrono::steady_clock::now();
    const auto status = stub.Detect(context.get(), request, &response);
    if (!status.ok()) throw std::runtime_error(file + " on '" + model + "': " + status.error_message());
    run.latency.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count());
    run.inference.push_back(response.timings().inference_seconds());
    run.memory.push_back(static_cast<double>(response.inference_memory_bytes()));
    for (const auto& d : response.detections()) {
      CocoBox box;
      box.image_id = image_id;
      box.category_id = d.class_id();
      box.score = d.score();
      box.x = d.box().x0();
      box.y = d.box().y0();
      box.w = d.box().x1() - d.box().x0();
      box.h = d.box().y1() - d.box().y0();
      run.detections.push_back(box);
    }
    if ((++done % 20 == 0 || done == dataset.image_ids.size()) && ProgressShown()) {
      std::fprintf(stderr, "\r[eval %s] %zu/%zu images", model.empty() ? "default" : model.c_str(), done,
                   dataset.image_ids.size());
    }
  }
  if (ProgressShown()) std::fprintf(stderr, "\n");
  return run;
}

nlohmann::json ToJson(const CocoSummary& s, const ModelRun& run) {
  return {{"ap", s.ap},
          {"ap50", s.ap50},
          {"ap75", s.ap75},
          {"ap_small", s.ap_small},
          {"ap_medium", s.ap_medium},
          {"ap_large", s.ap_large},
          {"ar1", s.ar1},
          {"ar10", s.ar10},
          {"ar100", s.ar100},
          {"images", run.latency.size()},
          {"latency_p50_seconds", Summarize(run.latency).p50},
          {"inference_p50_seconds", Summarize(run.inference).p50},
          {"inference_memory_p50_bytes", Summarize(run.memory).p50}};
}

void WriteJson(const std::string& path, const nlohmann::json& figures) {
  std::ofstream out(path);
  out << figures.dump(2) << "\n";
  if (!out) throw std::runtime_error(path + ": cannot write");
}

}  // namespace

int RunEval(const ClientOptions& client, const EvalCommand& command) {
  const auto dataset = ReadCocoAnnotations(command.annotations);
  std::vector<int> image_ids;
  for (const auto& [file, id] : dataset.image_ids) image_ids.push_back(id);
  auto stub = v1::Detector::NewStub(MakeChannel(client));
  if (command.model_b.empty()) {
    const auto run = RunModel(*stub, client, command, dataset, command.model_a);
    const auto summary = EvaluateCoco(dataset.ground_truth, run.detections, image_ids);
    std::cout << FormatCocoSummary(summary);
    if (!command.json_path.empty()) {
      WriteJson(command.json_path, {{command.model_a.empty() ? "default" : command.model_a, ToJson(summary, run)}});
    }
    return 0;
  }
  const auto a = RunModel(*stub, client, command, dataset, command.model_a);
  const auto b = RunModel(*stub, client, command, dataset, command.model_b);
  const auto sa = EvaluateCoco(dataset.ground_truth, a.detections, image_ids);
  const auto sb = EvaluateCoco(dataset.ground_truth, b.detections, image_ids);
  std::printf("%-22s %14s %14s\n", "", command.model_a.c_str(), command.model_b.c_str());
  const std::pair<const char*, std::pair<double, double>> rows[] = {{"AP", {sa.ap, sb.ap}},
                                                                    {"AP50", {sa.ap50, sb.ap50}},
                                                                    {"AP75", {sa.ap75, sb.ap75}},
                                                                    {"AP small", {sa.ap_small, sb.ap_small}},
                                                                    {"AP medium", {sa.ap_medium, sb.ap_medium}},
                                                                    {"AP large", {sa.ap_large, sb.ap_large}},
                                                                    {"AR@100", {sa.ar100, sb.ar100}}};
  for (const auto& [name, values] : rows) std::printf("%-22s %14.3f %14.3f\n", name, values.first, values.second);
  std::printf("%-22s %11.1f ms %11.1f ms\n", "latency p50 (client)", Summarize(a.latency).p50 * 1e3,
              Summarize(b.latency).p50 * 1e3);
  std::printf("%-22s %11.1f ms %11.1f ms\n", "inference p50 (server)", Summarize(a.inference).p50 * 1e3,
              Summarize(b.inference).p50 * 1e3);
  if (!command.json_path.empty()) {
    WriteJson(command.json_path, {{command.model_a, ToJson(sa, a)}, {command.model_b, ToJson(sb, b)}});
  }
  return 0;
}

}  // namespace detr::client
