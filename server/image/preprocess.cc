#include "server/image/preprocess.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <stdexcept>

#include <ATen/ATen.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "server/image/jpeg_decode.h"

namespace detr {
namespace {

constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};

// 8-bit RGB (H, W, 3) -> ImageNet-normalised float planes in one pass,
// written into the top-left corner of a (3, out_height, out_width) tensor
// whose remaining (padding) pixels become 0, as the official padding does. A
// table per channel maps each byte to (v / 255 - mean) / std, computed in the
// same order of operations as the official ToTensor + Normalize. One pass
// over freshly allocated memory, instead of normalising and then copying
// into a zeroed canvas, saves ~3 ms of a 640x480 request.
at::Tensor NormalizedPlanes(const cv::Mat& rgb, int out_height, int out_width) {
  float table[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) table[c][v] = (static_cast<float>(v) / 255.0f - kMean[c]) / kStd[c];
  }
  auto out = at::empty({3, out_height, out_width}, at::kFloat);
  const int64_t plane = static_cast<int64_t>(out_height) * out_width;
  float* planes[3] = {out.data_ptr<float>(), out.data_ptr<float>() + plane, out.data_ptr<float>() + 2 * plane};
  for (int y = 0; y < out_height; ++y) {
    const int64_t row = static_cast<int64_t>(y) * out_width;
    const int filled = y < rgb.rows ? rgb.cols : 0;
    if (filled > 0) {
      const unsigned char* in = rgb.ptr<unsigned char>(y);
      float* r = planes[0] + row;
      float* g = planes[1] + row;
      float* b = planes[2] + row;
      for (int x = 0; x < filled; ++x, in += 3) {
        r[x] = table[0][in[0]];
        g[x] = table[1][in[1]];
        b[x] = table[2][in[2]];
      }
    }
    for (auto* p : planes) std::fill(p + row + filled, p + row + out_width, 0.0f);
  }
  return out;
}

}  // namespace

std::pair<int, int> ResizedSize(int height, int width, const ResizePolicy& policy) {
  if (policy.shortest_edge <= 0) return {height, width};
  double size = policy.shortest_edge;
  const double short_side = std::min(height, width), long_side = std::max(height, width);
  if (policy.longest_edge > 0 && long_side / short_side * size > policy.longest_edge) {
    size = std::round(policy.longest_edge * short_side / long_side);
  }
  const int target = static_cast<int>(size);
  if ((width <= height && width == target) || (height <= width && height == target)) return {height, width};
  if (width < height) return {static_cast<int>(static_cast<double>(target) * height / width), target};
  return {target, static_cast<int>(static_cast<double>(target) * width / height)};
}

cv::Mat DecodeImage(const std::vector<unsigned char>& bytes) { return DecodeImage(bytes.data(), bytes.size()); }

cv::Mat DecodeImage(const unsigned char* data, std::size_t size) {
  if (size == 0) throw std::invalid_argument("image is empty (0 bytes)");
  if (size > static_cast<std::size_t>(std::numeric_limits<int>::max())) throw std::invalid_argument("image is over 2 GiB");
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

at::Tensor ToModelInput(const cv::Mat& rgb, const ResizePolicy& policy) {
  if (rgb.empty() || rgb.type() != CV_8UC3) throw std::invalid_argument("expected a non-empty 8-bit RGB image");
  const auto [height, width] = ResizedSize(rgb.rows, rgb.cols, policy);
  cv::Mat resized = rgb;
  if (height != rgb.rows || width != rgb.cols) {
    const int interpolation = height < rgb.rows ? cv::INTER_AREA : cv::INTER_LINEAR;
    cv::resize(rgb, resized, cv::Size(width, height), 0, 0, interpolation);
  }
  return NormalizedPlanes(resized, resized.rows, resized.cols);
}

std::pair<at::Tensor, at::Tensor> ToCanvasInput(const cv::Mat& rgb, int canvas_height, int canvas_width) {
  if (rgb.empty() || rgb.type() != CV_8UC3) throw std::invalid_argument("expected a non-empty 8-bit RGB image");
  const double scale = std::min(static_cast<double>(canvas_height) / rgb.rows, static_cast<double>(canvas_width) / rgb.cols);
  const int height = std::max(1, std::min(canvas_height, static_cast<int>(std::lround(rgb.rows * scale))));
  const int width = std::max(1, std::min(canvas_width, static_cast<int>(std::lround(rgb.cols * scale))));
  cv::Mat resized = rgb;
  if (height != rgb.rows || width != rgb.cols) {
    cv::resize(rgb, resized, cv::Size(width, height), 0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  }
  return {NormalizedPlanes(resized, canvas_height, canvas_width), PaddingMask(canvas_height, canvas_width, height, width)};
}

at::Tensor PaddingMask(int64_t height, int64_t width, int64_t image_height, int64_t image_width) {
  auto mask = at::empty({height, width}, at::kBool);
  auto* padding = mask.data_ptr<bool>();
  for (int64_t y = 0; y < height; ++y, padding += width) {
    const int64_t filled = y < image_height ? std::min(image_width, width) : 0;
    std::fill(padding, padding + filled, false);
    std::fill(padding + filled, padding + width, true);
  }
  return mask;
}

std::pair<at::Tensor, at::Tensor> BatchInputs(const std::vector<at::Tensor>& images) {
  if (images.empty()) throw std::invalid_argument("no images to batch");
  int64_t height = 0, width = 0;
  for (const auto& image : images) {
    height = std::max(height, image.size(1));
    width = std::max(width, image.size(2));
  }
  const auto batch = static_cast<int64_t>(images.size());
  auto pixel_values = at::zeros({batch, 3, height, width}, images[0].options());
  auto pixel_mask = at::ones({batch, height, width}, at::kBool);
  for (int64_t i = 0; i < batch; ++i) {
    const auto h = images[i].size(1), w = images[i].size(2);
    pixel_values[i].slice(1, 0, h).slice(2, 0, w).copy_(images[i]);
    pixel_mask[i].slice(0, 0, h).slice(1, 0, w).fill_(false);
  }
  return {pixel_values, pixel_mask};
}

}  // namespace detr
