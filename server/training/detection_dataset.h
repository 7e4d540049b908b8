// A COCO-format detection set held in memory for training: images as
// normalised tensors, targets as normalised cx, cy, w, h boxes.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>

#include "server/training/set_criterion.h"

namespace detr::training {

class DetectionDataset {
 public:
  /// Reads ANNOTATIONS (COCO JSON) and the images it names from IMAGE_DIR.
  /// Every image must have the same size (so batches need no padding).
  /// Labels are the COCO category ids. Throws std::runtime_error.
  DetectionDataset(const std::string& annotations, const std::string& image_dir);

  std::size_t size() const { return images_.size(); }
  int max_category_id() const { return max_category_id_; }
  /// Category names by id for ids 0..num_classes-1 ("N/A" where the set has none).
  std::vector<std::string> CategoryNames(int num_classes) const;
  /// Images `indices` as (B, 3, H, W) pixels, (B, H, W) mask (no padding) and targets.
  void Batch(const std::vector<int64_t>& indices, at::Tensor& pixels, at::Tensor& mask, std::vector<Target>& targets) const;

 private:
  std::vector<at::Tensor> images_;  // (3, H, W) float, ImageNet-normalised
  std::vector<Target> targets_;
  int max_category_id_ = 0;
  std::vector<std::pair<int, std::string>> categories_;  // (id, name) as the annotations list them
};

}  // namespace detr::training
