// Encoded image bytes to 8-bit RGB (OpenCV, and libjpeg-turbo directly for
// JPEG).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <absl/status/statusor.h>
#include <opencv2/core/mat.hpp>

namespace detr::image {

/// Decodes an encoded image (JPEG, PNG, BMP, WebP, ...) to 8-bit RGB, upright
/// (Exif orientation applied). JPEGs go straight to libjpeg (jpeg_decode.h),
/// the rest through OpenCV. INVALID_ARGUMENT if the bytes are not a decodable
/// image, or are a truncated JPEG.
absl::StatusOr<cv::Mat> DecodeImage(const unsigned char* data, std::size_t size);
absl::StatusOr<cv::Mat> DecodeImage(const std::vector<unsigned char>& bytes);
/// Reads and decodes an image file to 8-bit RGB: NOT_FOUND if it cannot be
/// opened, INVALID_ARGUMENT (naming the file) if it is not a decodable image.
absl::StatusOr<cv::Mat> ReadImage(const std::string& path);

}  // namespace detr::image
