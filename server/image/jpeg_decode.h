// JPEG straight to 8-bit RGB with libjpeg(-turbo), the decoder OpenCV itself
// wraps. Calling it directly skips imdecode's format probing, its BGR output
// and the BGR->RGB pass after it: a 640x480 photograph decodes in 0.9 ms
// instead of 3.3 ms here (docs/benchmarks.md), with identical pixels.
#pragma once

#include <cstddef>

#include <absl/status/statusor.h>
#include <opencv2/core/mat.hpp>

namespace detr::image {

/// True if the bytes start with a JPEG start-of-image marker.
bool LooksLikeJpeg(const unsigned char* data, std::size_t size);

/// Decodes a JPEG to 8-bit RGB, upright: an Exif orientation is applied as
/// OpenCV's imdecode applies it, so boxes match what the client draws on.
/// UNIMPLEMENTED for JPEGs whose colour space libjpeg cannot turn into RGB
/// (CMYK, YCCK): the caller decodes those another way. INVALID_ARGUMENT with
/// libjpeg's message for a corrupt JPEG, and for a truncated one (libjpeg
/// alone would fill the missing part with grey and report success).
absl::StatusOr<cv::Mat> DecodeJpegToRgb(const unsigned char* data, std::size_t size);

}  // namespace detr::image
