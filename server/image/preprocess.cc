#include "server/image/preprocess.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include <ATen/ATen.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace detr {
namespace {

constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};

// 8-bit RGB (H, W, 3) -> ImageNet-normalised float (3, H, W) in one pass:
// a table per channel maps each byte to (v / 255 - mean) / std, computed in
// the same order of operations as the official ToTensor + Normalize.
at::Tensor NormalizedPlanes(const cv::Mat& rgb) {
  float table[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) table[c][v] = (static_cast<float>(v) / 255.0f - kMean[c]) / kStd[c];
  }
  const int64_t pixels = static_cast<int64_t>(rgb.rows) * rgb.cols;
  auto out = at::empty({3, rgb.rows, rgb.cols}, at::kFloat);
  float* r = out.data_ptr<float>();
  float* g = r + pixels;
  float* b = g + pixels;
  const unsigned char* in = rgb.data;
  for (int64_t i = 0; i < pixels; ++i, in += 3) {
    r[i] = table[0][in[0]];
    g[i] = table[1][in[1]];
    b[i] = table[2][in[2]];
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

cv::Mat DecodeImage(const std::vector<unsigned char>& bytes) {
  if (bytes.empty()) throw std::invalid_argument("image is empty (0 bytes)");
  cv::Mat bgr;
  try {
    bgr = cv::imdecode(bytes, cv::IMREAD_COLOR);
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
  if (!resized.isContinuous()) resized = resized.clone();
  return NormalizedPlanes(resized);
}

std::pair<at::Tensor, at::Tensor> ToCanvasInput(const cv::Mat& rgb, int canvas_height, int canvas_width) {
  if (rgb.empty()) throw std::invalid_argument("expected a non-empty 8-bit RGB image");
  const double scale = std::min(static_cast<double>(canvas_height) / rgb.rows, static_cast<double>(canvas_width) / rgb.cols);
  const int height = std::max(1, std::min(canvas_height, static_cast<int>(std::lround(rgb.rows * scale))));
  const int width = std::max(1, std::min(canvas_width, static_cast<int>(std::lround(rgb.cols * scale))));
  cv::Mat resized;
  cv::resize(rgb, resized, cv::Size(width, height), 0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  auto image = ToModelInput(resized, ResizePolicy{0, 0});
  auto pixels = at::zeros({3, canvas_height, canvas_width}, image.options());
  pixels.slice(1, 0, height).slice(2, 0, width).copy_(image);
  auto mask = at::ones({canvas_height, canvas_width}, at::kBool);
  mask.slice(0, 0, height).slice(1, 0, width).fill_(false);
  return {pixels, mask};
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
