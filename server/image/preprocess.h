// RGB images to model inputs: DETR's evaluation resize (or a fixed canvas)
// and ImageNet normalisation, into plain memory (core::PreparedImage). OpenCV
// only: no LibTorch, so that the service compiles without it.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

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

/// A model input size that images are padded into.
struct Canvas {
  int height = 0, width = 0;
  bool Holds(int h, int w) const { return h <= height && w <= width; }
  bool operator==(const Canvas& o) const { return height == o.height && width == o.width; }
};

/// Why `canvases` cannot hold every size `policy` resizes images to (both
/// bounds set, and a canvas at least shortest x longest and one at least
/// longest x shortest), or nothing when they can.
std::optional<std::string> CanvasesMissFor(const ResizePolicy& policy, const std::vector<Canvas>& canvases);

/// RGB uint8 image -> resized by the official rule (as Prepare), then padded
/// bottom/right into the smallest canvas (by area; the first of equals) that
/// holds it, the padding marked in its mask, as the official batched
/// evaluation pads a batch. Images of different sizes that land on one canvas
/// share its batches and its warm plans. Past an aspect ratio of 2:1 the
/// official rule's rounding can make the long side exceed longest_edge by a
/// few pixels; an image that then fits no canvas is fitted into the largest
/// canvas of its orientation (PrepareOnCanvas), never cropped.
core::PreparedImage PrepareOnCanvases(const cv::Mat& rgb, const ResizePolicy& policy,
                                      const std::vector<Canvas>& canvases);

}  // namespace detr::image
