#include "server/image/decode.h"

#include <fstream>
#include <iterator>
#include <limits>
#include <string>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "server/image/jpeg_decode.h"

namespace detr::image {

absl::StatusOr<cv::Mat> DecodeImage(const std::vector<unsigned char>& bytes) {
  return DecodeImage(bytes.data(), bytes.size());
}

absl::StatusOr<cv::Mat> DecodeImage(const unsigned char* data, std::size_t size) {
  if (size == 0) return absl::InvalidArgumentError("image is empty (0 bytes)");
  if (size > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    return absl::InvalidArgumentError("image is over 2 GiB");
  }
  if (LooksLikeJpeg(data, size)) {
    auto rgb = DecodeJpegToRgb(data, size);
    // UNIMPLEMENTED: a colour space libjpeg does not turn into RGB; OpenCV's converts it.
    if (rgb.ok() || rgb.status().code() != absl::StatusCode::kUnimplemented) return rgb;
  }
  cv::Mat bgr;
  try {  // OpenCV reports errors by throwing: caught here, at its boundary
    // A header over the caller's bytes: no copy of a request's message.
    const cv::Mat encoded(1, static_cast<int>(size), CV_8UC1, const_cast<unsigned char*>(data));
    bgr = cv::imdecode(encoded, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    return absl::InvalidArgumentError(std::string("image cannot be decoded: ") + e.what());
  }
  if (bgr.empty()) return absl::InvalidArgumentError("image cannot be decoded (not a supported format, or corrupt)");
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

absl::StatusOr<cv::Mat> ReadImage(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(path + ": cannot open image");
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto rgb = DecodeImage(bytes);
  if (!rgb.ok()) return absl::Status(rgb.status().code(), path + ": " + std::string(rgb.status().message()));
  return rgb;
}

}  // namespace detr::image
