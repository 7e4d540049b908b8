// A Detector without a model, for the service's tests (no LibTorch): it
// answers each image with one detection whose score is the image's first
// pixel value clamped to [0, 1], records the batches it saw, and can be made
// slow or failing, and reports the memory it is told to. FailingDetector
// wraps a real detector and fails its forward pass.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "server/core/api/detector.h"

namespace detr::testing {

class FakeDetector final : public core::Detector {
 public:
  explicit FakeDetector(core::ModelConfig config = {}) { info_.config = std::move(config); }

  core::DetectionPass Detect(const std::vector<const core::PreparedImage*>& images,
                             const std::vector<core::DetectOptions>& options) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      batches_.push_back(static_cast<int>(images.size()));
    }
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    if (fail_) throw std::runtime_error("the fake detector was told to fail");
    core::DetectionPass pass;
    for (std::size_t i = 0; i < images.size(); ++i) {
      Detection d;
      d.class_id = 1;
      d.class_name = "thing";
      d.score = std::clamp(images[i]->pixels.empty() ? 0.f : images[i]->pixels[0], 0.f, 1.f);
      d.box[2] = static_cast<float>(images[i]->original_width);
      d.box[3] = static_cast<float>(images[i]->original_height);
      Detections detections;
      if (d.score >= options[i].score_threshold) detections.push_back(d);
      pass.detections.push_back(std::move(detections));
    }
    pass.inference_seconds = 0.001;
    pass.peak_bytes = 1000 * images.size();
    return pass;
  }
  const core::DetectorInfo& info() const override { return info_; }
  core::ModelMemory memory() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return memory_;
  }

  void set_memory(const core::ModelMemory& memory) {
    std::lock_guard<std::mutex> lock(mutex_);
    memory_ = memory;
  }
  void set_delay(std::chrono::milliseconds delay) { delay_ = delay; }
  void set_fail(bool fail) { fail_ = fail; }
  std::vector<int> batches() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return batches_;
  }

 private:
  core::DetectorInfo info_;
  std::chrono::milliseconds delay_{0};
  std::atomic<bool> fail_{false};
  mutable std::mutex mutex_;
  std::vector<int> batches_;  // guarded by mutex_
  core::ModelMemory memory_;  // guarded by mutex_
};

/// A real detector whose forward pass fails: its info and memory are the
/// inner one's, so the server loads, budgets and routes it as the real model.
class FailingDetector final : public core::Detector {
 public:
  explicit FailingDetector(std::unique_ptr<core::Detector> inner) : inner_(std::move(inner)) {}
  core::DetectionPass Detect(const std::vector<const core::PreparedImage*>&,
                             const std::vector<core::DetectOptions>&) override {
    throw std::runtime_error("the failing detector's forward pass failed, as the test asked");
  }
  const core::DetectorInfo& info() const override { return inner_->info(); }
  core::ModelMemory memory() const override { return inner_->memory(); }

 private:
  std::unique_ptr<core::Detector> inner_;
};

}  // namespace detr::testing
