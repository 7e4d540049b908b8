// Drawing detections on an image, for people to look at.
#pragma once

#include <string>

#include <opencv2/core/mat.hpp>

#include "server/types/detection.h"

namespace detr::image {

/// Draws each detection's box and "name score" label on an RGB image, one
/// colour per class.
void DrawDetections(cv::Mat& rgb, const Detections& detections);

/// Writes an RGB image (format by extension). Throws std::runtime_error.
void WriteImage(const std::string& path, const cv::Mat& rgb);

}  // namespace detr::image
