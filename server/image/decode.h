// Encoded image bytes to 8-bit RGB (OpenCV, and libjpeg-turbo directly for
// JPEG).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

namespace detr::image {

/// Decodes an encoded image (JPEG, PNG, BMP, WebP, ...) to 8-bit RGB, upright
/// (Exif orientation applied). JPEGs go straight to libjpeg (jpeg_decode.h),
/// the rest through OpenCV. Throws std::invalid_argument if the bytes are not
/// a decodable image, or are a truncated JPEG.
cv::Mat DecodeImage(const unsigned char* data, std::size_t size);
cv::Mat DecodeImage(const std::vector<unsigned char>& bytes);
/// Reads and decodes an image file to 8-bit RGB. Throws std::invalid_argument.
cv::Mat ReadImage(const std::string& path);

}  // namespace detr::image
