// RGB images to model inputs: DETR's evaluation resize (or a fixed canvas)
// and ImageNet normalisation, into plain memory (core::PreparedImage). OpenCV
// only: no LibTorch, so that the service compiles without it.
#pragma once

#include <utility>

#include <opencv2/core/mat.hpp>

#include "server/core/api/prepared_image.h"

namespace detr::image {

/// The official evaluation transform: shorter side to `shortest_edge`, unless
/// that makes the longer side exceed `longest_edge` (then the longer side is
/// `longest_edge`). 0 disables a bound.
struct ResizePolicy {
  int shortest_edge = 800;
  int longest_edge = 1333;
};

/// (height, width) after resizing an image of (height, width), as the
/// official get_size_with_aspect_ratio computes it.
std::pair<int, int> ResizedSize(int height, int width, const ResizePolicy& policy);

/// RGB uint8 image -> the model input at the policy's size, no padding.
/// Downscaling uses area interpolation (close to PIL's antialiased bilinear
/// that the official transform uses), upscaling bilinear. Throws
/// std::invalid_argument for an empty or non-RGB image.
core::PreparedImage Prepare(const cv::Mat& rgb, const ResizePolicy& policy);

/// RGB uint8 image -> a (canvas_height, canvas_width) input: resized to fit
/// inside the canvas (aspect kept), padded with zeros bottom/right, the
/// padding marked in its mask. Every image then has the same input shape, so
/// any requests can share a batch.
core::PreparedImage PrepareOnCanvas(const cv::Mat& rgb, int canvas_height, int canvas_width);

}  // namespace detr::image
