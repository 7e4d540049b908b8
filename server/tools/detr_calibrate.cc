// detr-calibrate: measures the range of every backbone activation of a DETR
// model on a folder of images, for its int8 variant (precision: int8). The
// images must not be evaluation data; docs/int8.md says which draw the
// shipped calibrations used.
//
//   detr-calibrate --model-config C.json --weights W.safetensors --images DIR
//                  [--count 256] [--min-size 800 --max-size 1333] [--source TEXT] --output W.int8.json
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <torch/autograd.h>

#include "server/core/io/int8_calibration.h"
#include "server/core/model/input_tensors.h"
#include "server/core/model/model_factory.h"
#include "server/core/runtime/cpu_allocator.h"
#include "server/core/runtime/runtime.h"
#include "server/image/decode.h"
#include "server/image/preprocess.h"
#include "server/tools/model_options.h"

namespace {

namespace core = detr::core;
namespace tools = detr::tools;
namespace image = detr::image;

struct Options {
  tools::ModelOptions model;
  std::string images, output, source;
  int count = 256;
  int threads = 0;
  image::ResizePolicy resize;
};

// The first `count` image files of `folder`, in name order (a fixed draw).
std::vector<std::filesystem::path> ImageFiles(const std::string& folder, int count) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    const auto extension = entry.path().extension().string();
    for (const char* known : {".png", ".jpg", ".jpeg", ".bmp", ".webp"}) {
      if (entry.is_regular_file() && extension == known) files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  if (static_cast<int>(files.size()) > count) files.resize(count);
  return files;
}

// The largest |value| of each activation over the images, each prepared as
// the server prepares a request.
core::Int8Calibration Measure(const core::OneDnnResNet& body, const std::vector<std::filesystem::path>& files,
                              const Options& options) {
  core::Int8Calibration calibration;
  calibration.weights_fingerprint = body.WeightsFingerprint();
  torch::NoGradGuard no_grad;
  for (const auto& file : files) {
    auto rgb = image::ReadImage(file.string());
    if (!rgb.ok()) throw std::runtime_error(std::string(rgb.status().message()));
    const auto prepared = image::Prepare(*rgb, options.resize);
    const auto [pixel_values, pixel_mask] = core::BatchInputs({&prepared});
    for (const auto& [name, range] : body.MeasureRanges(pixel_values)) {
      calibration.ranges[name] = std::max(calibration.ranges[name], range);
    }
    if (++calibration.images % 32 == 0 || calibration.images == static_cast<int>(files.size())) {
      std::fprintf(stderr, "\r%d / %zu images", calibration.images, files.size());
    }
  }
  std::fprintf(stderr, "\n");
  calibration.source = (options.source.empty() ? options.images : options.source) + "; first " +
                       std::to_string(calibration.images) + " by name, resized to " +
                       std::to_string(options.resize.shortest_edge) + "/" +
                       std::to_string(options.resize.longest_edge) + " px";
  return calibration;
}

}  // namespace

int main(int argc, char** argv) {
  core::UseFastBlasKernels(argv);  // may re-execute the program: before anything else
  Options options;
  CLI::App app{"Measures a DETR model's backbone activation ranges on images: the calibration of its int8 variant."};
  tools::AddModelOptions(app, options.model);
  app.add_option("--images", options.images, "a folder of images (never the evaluation data)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--count", options.count, "use the first N images by name")->capture_default_str();
  app.add_option("--min-size", options.resize.shortest_edge, "resize the shorter side to this, as the server")
      ->capture_default_str();
  app.add_option("--max-size", options.resize.longest_edge, "longest side at most this")->capture_default_str();
  app.add_option("--output", options.output, "the calibration file to write")->required();
  app.add_option("--source", options.source, "where the images came from, for the file (default: the folder)");
  app.add_option("--threads", options.threads, "intra-op threads (0 = all cores)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!tools::HasWeightsOrSeed(options.model, "detr-calibrate")) return 2;
  core::CachingCpuAllocator allocator;
  core::ScopedCpuAllocator use_allocator(allocator);
  try {
    core::ConfigureThreads(options.threads);
    const auto files = ImageFiles(options.images, options.count);
    if (files.empty()) throw std::runtime_error("no images (.png, .jpg, .bmp, .webp) in " + options.images);
    const auto loaded = core::BuildModel(options.model.Spec());
    const auto* body = loaded.model->onednn_backbone();
    if (!body) throw std::runtime_error("the backbone does not run on oneDNN here: " + loaded.model->backbone_engine());
    core::WriteInt8Calibration(options.output, Measure(*body, files, options));
    std::cerr << "wrote " << options.output << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "detr-calibrate: " << core::ErrorMessage(e) << "\n";
    return 1;
  }
}
