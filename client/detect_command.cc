#include <algorithm>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "client/commands.h"
#include "server/image/draw.h"
#include "server/types/status_code_name.h"

namespace detr::client {
namespace {

nlohmann::json ToJson(const std::string& file, const v1::DetectResponse& r) {
  nlohmann::json out = {{"file", file},
                        {"model", r.model()},
                        {"experiment", r.experiment()},
                        {"attention",
                         {{"encoder.self", r.attention().encoder_self()},
                          {"decoder.self", r.attention().decoder_self()},
                          {"decoder.cross", r.attention().decoder_cross()}}},
                        {"batch_size", r.batch_size()},
                        {"timings",
                         {{"queue_seconds", r.timings().queue_seconds()},
                          {"preprocess_seconds", r.timings().preprocess_seconds()},
                          {"inference_seconds", r.timings().inference_seconds()},
                          {"postprocess_seconds", r.timings().postprocess_seconds()}}},
                        {"inference_memory_bytes", r.inference_memory_bytes()},
                        {"width", r.image_width()},
                        {"height", r.image_height()},
                        {"detections", nlohmann::json::array()}};
  for (const auto& d : r.detections()) {
    out["detections"].push_back({{"class_id", d.class_id()},
                                 {"class_name", d.class_name()},
                                 {"score", d.score()},
                                 {"box", {d.box().x0(), d.box().y0(), d.box().x1(), d.box().y1()}}});
  }
  return out;
}

void Draw(const std::string& file, const std::string& bytes, const v1::DetectResponse& response,
          const std::string& dir) {
  std::vector<unsigned char> data(bytes.begin(), bytes.end());
  cv::Mat bgr = cv::imdecode(data, cv::IMREAD_COLOR);
  if (bgr.empty()) return;
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  image::DrawDetections(rgb, ToDetections(response));
  std::filesystem::create_directories(dir);
  image::WriteImage((std::filesystem::path(dir) / (std::filesystem::path(file).stem().string() + ".png")).string(),
                    rgb);
}

}  // namespace

std::vector<std::string> ExpandImagePaths(const std::vector<std::string>& inputs) {
  static const std::vector<std::string> kExtensions = {".jpg", ".jpeg", ".png", ".bmp", ".webp"};
  std::vector<std::string> files;
  for (const auto& input : inputs) {
    if (!std::filesystem::is_directory(input)) {
      files.push_back(input);
      continue;
    }
    std::vector<std::string> found;
    for (const auto& entry : std::filesystem::directory_iterator(input)) {
      auto extension = entry.path().extension().string();
      std::transform(extension.begin(), extension.end(), extension.begin(), ::tolower);
      if (entry.is_regular_file() && std::count(kExtensions.begin(), kExtensions.end(), extension)) {
        found.push_back(entry.path().string());
      }
    }
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

int RunDetect(const ClientOptions& client, const DetectCommand& command) {
  auto stub = v1::Detector::NewStub(MakeChannel(client));
  int failures = 0;
  for (const auto& file : ExpandImagePaths(command.inputs)) {
    v1::DetectRequest request;
    std::string bytes;
    try {
      bytes = ReadFileBytes(file);
    } catch (const std::exception& e) {
      std::cout << nlohmann::json{{"file", file}, {"error", e.what()}}.dump() << "\n";
      ++failures;
      continue;
    }
    request.mutable_image()->set_encoded(bytes);
    request.set_model(command.model);
    request.set_routing_key(command.routing_key);
    request.set_score_threshold(command.threshold);
    request.set_max_detections(static_cast<uint32_t>(command.max_detections));
    request.set_request_id(file);
    v1::DetectResponse response;
    auto context = MakeContext(client);
    const auto status = stub->Detect(context.get(), request, &response);
    if (!status.ok()) {
      std::cout << nlohmann::json{{"file", file},
                                  {"code", StatusCodeName(status.error_code())},
                                  {"error", status.error_message()}}
                       .dump()
                << "\n";
      ++failures;
      continue;
    }
    std::cout << ToJson(file, response).dump() << "\n";
    if (!command.draw_dir.empty()) Draw(file, bytes, response, command.draw_dir);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace detr::client
