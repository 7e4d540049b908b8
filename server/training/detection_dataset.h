// A COCO-format detection set held in memory for training: images as
// normalised tensors, targets as normalised cx, cy, w, h boxes.
#pragma once

#include <random>
#include <string>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>
#include <opencv2/core/mat.hpp>

#include "server/training/set_criterion.h"

namespace detr::training {

/// The official training's random resize (RandomResize in datasets/coco.py):
/// images are resized so that their shortest edge is one of `scales`, drawn
/// at random, and their longest at most `max_size`, keeping their aspect
/// ratio. Empty scales: images keep their size. Unlike the official code, one
/// scale is drawn per batch, not per image: with same-size batches
/// (BatchSampler) nothing is padded, and padding must stay out of batches
/// here because the backbone's batch norms train on batch statistics (the
/// official ones are frozen): padded pixels in those statistics left running
/// statistics that broke inference (docs/accuracy.md).
struct RandomResize {
  std::vector<int> scales;
  int max_size = 0;  // 0: no limit
};

/// The official training's other branch (make_coco_transforms: RandomSelect
/// of RandomResize alone, or RandomResize([400, 500, 600]) -> RandomSizeCrop(384,
/// 600) -> RandomResize): with `probability`, a batch is first cut to a random
/// region, as if each image had been resized so that its shortest edge is one
/// of `scales` and a region of min_size..max_size pixels per side taken of
/// that. The region is cut from the image as decoded (the same geometry
/// without a second interpolation), one region size per batch and one place
/// per image, so that a same-size batch stays unpadded; boxes are clipped to
/// the region and those left empty dropped, as the official crop does.
struct RandomSizeCrop {
  double probability = 0;  // the official RandomSelect: 0.5
  std::vector<int> scales;
  int min_size = 0, max_size = 0;
};

/// Batches whose images all have one size: each batch comes from one group
/// of DetectionDataset::SizeGroups(), a group drawn with probability
/// proportional to its size, its images in a shuffled order that is drawn
/// again when used up (a group smaller than a batch repeats images).
class BatchSampler {
 public:
  explicit BatchSampler(std::vector<std::vector<int64_t>> groups);
  std::vector<int64_t> Next(std::size_t batch_size, std::mt19937_64& rng);

 private:
  std::vector<std::vector<int64_t>> groups_;
  std::vector<std::size_t> cursors_;
  std::discrete_distribution<std::size_t> pick_;
};

class DetectionDataset {
 public:
  /// Reads ANNOTATIONS (COCO JSON) and the images it names from IMAGE_DIR.
  /// Images may differ in size: a batch pads them as the server does.
  /// Labels are the COCO category ids. Throws std::runtime_error.
  DetectionDataset(const std::string& annotations, const std::string& image_dir);

  std::size_t size() const { return images_.size(); }
  int max_category_id() const { return max_category_id_; }
  /// Category names by id for ids 0..num_classes-1 ("N/A" where the set has none).
  std::vector<std::string> CategoryNames(int num_classes) const;
  /// Indices of the images of each size, one group per width x height.
  std::vector<std::vector<int64_t>> SizeGroups() const;
  /// Images `indices` as (B, 3, H, W) pixels padded bottom-right to the
  /// largest, (B, H, W) mask (true on padding) and targets (boxes normalised
  /// by each image's own size, so resizing leaves them as they are). With
  /// `rng`, the images are first cut to a random region (`crop`, when drawn)
  /// and get the batch's random size (`resize`).
  void Batch(const std::vector<int64_t>& indices, at::Tensor& pixels, at::Tensor& mask, std::vector<Target>& targets,
             const RandomResize& resize = {}, std::mt19937_64* rng = nullptr, const RandomSizeCrop& crop = {}) const;

 private:
  std::vector<cv::Mat> images_;  // RGB uint8, as decoded: a quarter of float pixels' memory
  std::vector<Target> targets_;
  int max_category_id_ = 0;
  std::vector<std::pair<int, std::string>> categories_;  // (id, name) as the annotations list them
};

}  // namespace detr::training
