// The official PostProcess: class probabilities, best non-"no object" class,
// boxes scaled to the original image.
#pragma once

#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "server/core/api/detector.h"
#include "server/types/detection.h"

namespace detr::core {

struct PostProcessed {
  at::Tensor scores;  ///< (B, Q) probability of the best real class
  at::Tensor labels;  ///< (B, Q) int64 class id
  at::Tensor boxes;   ///< (B, Q, 4) x0, y0, x1, y1 in pixels
};

/// logits (B, Q, C+1), boxes (B, Q, 4) cx,cy,w,h normalised; target_sizes
/// (B, 2) as (height, width) of each original image.
PostProcessed PostProcess(const at::Tensor& logits, const at::Tensor& boxes, const at::Tensor& target_sizes);

/// Image `index` of `out` as plain detections as `options` keep them (score
/// >= its threshold, its classes only, best first, at most max_detections),
/// named by class_names[class id] (ModelConfig::ClassNames()).
Detections ToDetections(const PostProcessed& out, int64_t index, const DetectOptions& options,
                        const std::vector<std::string>& class_names);

}  // namespace detr::core
