#include "server/image/decode.h"

#include <fstream>
#include <iterator>
#include <limits>
#include <stdexcept>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "server/image/jpeg_decode.h"

namespace detr::image {

cv::Mat DecodeImage(const std::vector<unsigned char>& bytes) { return DecodeImage(bytes.data(), bytes.size()); }

cv::Mat DecodeImage(const unsigned char* data, std::size_t size) {
  if (size == 0) throw std::invalid_argument("image is empty (0 bytes)");
  if (size > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw std::invalid_argument("image is over 2 GiB");
  if (LooksLikeJpeg(data, size)) {
    if (auto rgb = DecodeJpegToRgb(data, size)) return std::move(*rgb);
  }
  cv::Mat bgr;
  try {
    // A header over the caller's bytes: no copy of a request's message.
    const cv::Mat encoded(1, static_cast<int>(size), CV_8UC1, const_cast<unsigned char*>(data));
    bgr = cv::imdecode(encoded, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    throw std::invalid_argument(std::string("image cannot be decoded: ") + e.what());
  }
  if (bgr.empty()) throw std::invalid_argument("image cannot be decoded (not a supported format, or corrupt)");
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

cv::Mat ReadImage(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument(path + ": cannot open image");
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    return DecodeImage(bytes);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
}

}  // namespace detr::image
