// detr-predict: runs one DETR model on an image (official preprocessing and
// post-processing) or on raw input tensors, without the server.
//
//   detr-predict --model-config C.json --weights W.safetensors --image IMG [--json OUT] [--draw OUT.png]
//                [--int8-calibration W.int8.json]
//   detr-predict --model-config C.json --weights W.safetensors --raw-input IN.safetensors
//                --input-prefix P --raw-output OUT.safetensors
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/autograd.h>

#include "server/core/runtime/cpu_allocator.h"
#include "server/core/model/model_factory.h"
#include "server/core/model/postprocess.h"
#include "server/core/runtime/runtime.h"
#include "server/core/io/tensor_io.h"
#include "server/image/draw.h"
#include "server/core/model/input_tensors.h"
#include "server/image/decode.h"
#include "server/image/preprocess.h"
#include "server/tools/model_options.h"

namespace {

namespace core = detr::core;
namespace tools = detr::tools;
namespace image = detr::image;

struct Options {
  tools::ModelOptions model;
  std::string image, json_path, draw_path, raw_input, input_prefix, raw_output, int8_calibration;
  float threshold = 0.7f;
  int max_detections = 0;
  int threads = 0;
  bool no_optimize = false;
  image::ResizePolicy resize;
};

nlohmann::json ToJson(const std::string& image, const cv::Mat& rgb, const detr::Detections& detections,
                      double milliseconds) {
  nlohmann::json out = {{"image", image},
                        {"width", rgb.cols},
                        {"height", rgb.rows},
                        {"inference_ms", milliseconds},
                        {"detections", nlohmann::json::array()}};
  for (const auto& d : detections) {
    out["detections"].push_back({{"class_id", d.class_id},
                                 {"class_name", d.class_name},
                                 {"score", d.score},
                                 {"box", {d.box[0], d.box[1], d.box[2], d.box[3]}}});
  }
  return out;
}

int RunImage(const Options& options, core::Detr& model) {
  auto read = image::ReadImage(options.image);
  if (!read.ok()) {
    std::cerr << read.status().message() << "\n";
    return 1;
  }
  cv::Mat& rgb = *read;  // drawn on below
  const auto prepared = image::Prepare(rgb, options.resize);
  auto [pixel_values, pixel_mask] = core::BatchInputs({&prepared});
  torch::NoGradGuard no_grad;
  const auto start = std::chrono::steady_clock::now();
  auto out = model->forward(pixel_values, pixel_mask);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  auto sizes = at::tensor({static_cast<int64_t>(rgb.rows), static_cast<int64_t>(rgb.cols)}, at::kLong).view({1, 2});
  core::DetectOptions keep;
  keep.score_threshold = options.threshold;
  keep.max_detections = options.max_detections;
  auto detections =
      core::ToDetections(core::PostProcess(out.logits, out.boxes, sizes), 0, keep, model->config().ClassNames());
  const auto json = ToJson(options.image, rgb, detections, ms).dump();
  if (options.json_path.empty()) {
    std::cout << json << "\n";
  } else {
    std::ofstream(options.json_path) << json << "\n";
  }
  if (!options.draw_path.empty()) {
    image::DrawDetections(rgb, detections);
    image::WriteImage(options.draw_path, rgb);
  }
  std::fprintf(stderr, "%zu detection(s) in %.1f ms\n", detections.size(), ms);
  return 0;
}

int RunRaw(const Options& options, core::Detr& model) {
  auto inputs = core::LoadSafetensors(options.raw_input);
  const auto values_key = options.input_prefix + "pixel_values", mask_key = options.input_prefix + "pixel_mask";
  for (const auto& key : {values_key, mask_key}) {
    if (!inputs.count(key)) throw std::invalid_argument(options.raw_input + ": no tensor '" + key + "'");
  }
  torch::NoGradGuard no_grad;
  auto out = model->forward(inputs.at(values_key).to(at::kFloat), inputs.at(mask_key).to(at::kBool));
  core::SaveSafetensors(options.raw_output, {{"pred_logits", out.logits}, {"pred_boxes", out.boxes}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  core::UseFastBlasKernels(argv);  // may re-execute the program: before anything else
  Options options;
  CLI::App app{"Runs a DETR model on an image or on raw input tensors."};
  tools::AddModelOptions(app, options.model);
  auto* image =
      app.add_option("--image", options.image, "image file (JPEG, PNG, BMP, WebP, ...)")->check(CLI::ExistingFile);
  app.add_option("--json", options.json_path, "write detections as JSON here (default: stdout)");
  app.add_option("--draw", options.draw_path, "write the image with boxes drawn here");
  app.add_option("--threshold", options.threshold, "minimum score")->capture_default_str();
  app.add_option("--max-detections", options.max_detections, "keep at most this many (0 = all)")->capture_default_str();
  app.add_option("--min-size", options.resize.shortest_edge, "resize the shorter side to this")->capture_default_str();
  app.add_option("--max-size", options.resize.longest_edge, "longest side at most this")->capture_default_str();
  auto* raw = app.add_option("--raw-input", options.raw_input, "safetensors with PREFIX+pixel_values/pixel_mask")
                  ->check(CLI::ExistingFile);
  app.add_option("--input-prefix", options.input_prefix, "key prefix in --raw-input");
  app.add_option("--raw-output", options.raw_output, "write pred_logits/pred_boxes here")->needs(raw);
  raw->needs(app.get_option("--raw-output"));
  image->excludes(raw);
  app.add_option("--threads", options.threads, "intra-op threads (0 = all cores)")->capture_default_str();
  app.add_flag("--no-optimize", options.no_optimize, "skip batch-norm folding and channels-last (debugging)");
  app.add_option("--int8-calibration", options.int8_calibration,
                 "run the backbone's blocks in int8 with this calibration (docs/int8.md)")
      ->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);

  if (options.image.empty() && options.raw_input.empty()) {
    std::cerr << "detr-predict: give --image or --raw-input (see --help)\n";
    return 2;
  }
  if (!tools::HasWeightsOrSeed(options.model, "detr-predict")) return 2;
  core::CachingCpuAllocator allocator;
  core::ScopedCpuAllocator use_allocator(allocator);
  try {
    core::ConfigureThreads(options.threads);
    core::ModelSpec spec = options.model.Spec();
    spec.optimize = !options.no_optimize;
    spec.int8_calibration = options.int8_calibration;
    auto loaded = core::BuildModel(spec);
    for (const auto& line : loaded.report.skipped) std::cerr << "note: " << line << "\n";
    if (loaded.random_weights) {
      std::cerr << "note: random weights (seed " << spec.random_seed << "): detections are meaningless\n";
    }
    std::cerr << core::RuntimeSummary() << "\n";
    return options.image.empty() ? RunRaw(options, loaded.model) : RunImage(options, loaded.model);
  } catch (const std::exception& e) {
    std::cerr << "detr-predict: " << core::ErrorMessage(e) << "\n";
    return 1;
  }
}
