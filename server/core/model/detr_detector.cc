#include "server/core/model/detr_detector.h"

#include <chrono>
#include <stdexcept>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "server/core/model/input_tensors.h"
#include "server/core/model/postprocess.h"
#include "server/core/runtime/cpu_allocator.h"
#include "server/core/runtime/runtime.h"

namespace detr::core {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

DetrDetector::DetrDetector(const ModelSpec& spec) {
  auto loaded = BuildModel(spec);
  model_ = loaded.model;
  info_.config = spec.config;
  info_.parameter_count = model_->parameter_count();
  info_.random_weights = loaded.random_weights;
  info_.backbone_engine = model_->backbone_engine();
  const auto* body = model_->onednn_backbone();
  info_.precision = body && body->int8() ? "int8" : "float32";
  info_.load_notes = loaded.report.skipped;
  class_names_ = spec.config.ClassNames();
}

DetectionPass DetrDetector::Detect(const std::vector<const PreparedImage*>& images,
                                   const std::vector<DetectOptions>& options) {
  if (images.empty() || images.size() != options.size()) {
    throw std::invalid_argument("Detect needs one set of options per image, and at least one image");
  }
  const auto start = Clock::now();
  DetectionPass pass;
  DetrOutput out;
  at::Tensor sizes;
  {
    c10::InferenceMode inference;
    MemoryScope memory;
    const auto [pixels, mask] = BatchInputs(images);
    out = model_->forward(pixels, mask);
    pass.peak_bytes = memory.peak_bytes();
    std::vector<int64_t> original;
    for (const auto* image : images) {
      original.push_back(image->original_height);
      original.push_back(image->original_width);
    }
    sizes = at::tensor(original, at::kLong).view({static_cast<int64_t>(images.size()), 2});
  }
  const auto inferred = Clock::now();
  const auto post = PostProcess(out.logits, out.boxes, sizes);
  for (std::size_t i = 0; i < images.size(); ++i) {
    pass.detections.push_back(ToDetections(post, static_cast<int64_t>(i), options[i], class_names_));
  }
  pass.inference_seconds = Seconds(start, inferred);
  pass.postprocess_seconds = Seconds(inferred, Clock::now());
  // Each worker thread that ran a pass keeps an OpenMP team; with more teams
  // than cores, all of them stop spinning between parallel regions and every
  // pass pays a wake-up per region (runtime.h). Ending the team after each
  // batch costs one thread start per batch (not measurable).
  ReleaseIntraOpThreads();
  return pass;
}

std::unique_ptr<Detector> LoadDetrDetector(const ModelSpec& spec) { return std::make_unique<DetrDetector>(spec); }

}  // namespace detr::core
