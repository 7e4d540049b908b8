#include "server/core/model/input_tensors.h"

#include <algorithm>
#include <stdexcept>

#include <ATen/ATen.h>

namespace detr::core {

std::pair<at::Tensor, at::Tensor> ImageTensors(const PreparedImage& image) {
  const int64_t height = image.height, width = image.width;
  if (height <= 0 || width <= 0 || image.pixels.size() != static_cast<std::size_t>(3 * height * width)) {
    throw std::invalid_argument("a prepared image needs 3 x height x width pixels");
  }
  auto pixels = at::from_blob(const_cast<float*>(image.pixels.data()), {3, height, width}, at::kFloat);
  if (image.padding.empty()) return {pixels, at::zeros({height, width}, at::kBool)};
  if (image.padding.size() != static_cast<std::size_t>(height * width)) {
    throw std::invalid_argument("a prepared image's padding mask needs height x width entries");
  }
  // bool is one byte holding 0 or 1, as the mask's bytes do.
  return {pixels, at::from_blob(const_cast<std::uint8_t*>(image.padding.data()), {height, width}, at::kBool)};
}

std::pair<at::Tensor, at::Tensor> BatchInputs(const std::vector<const PreparedImage*>& images) {
  if (images.empty()) throw std::invalid_argument("no images to batch");
  if (images.size() == 1) {
    auto [pixels, mask] = ImageTensors(*images[0]);
    return {pixels.unsqueeze(0), mask.unsqueeze(0)};
  }
  int64_t height = 0, width = 0;
  for (const auto* image : images) {
    height = std::max<int64_t>(height, image->height);
    width = std::max<int64_t>(width, image->width);
  }
  const auto batch = static_cast<int64_t>(images.size());
  auto pixel_values = at::zeros({batch, 3, height, width}, at::kFloat);
  auto pixel_mask = at::ones({batch, height, width}, at::kBool);
  for (int64_t i = 0; i < batch; ++i) {
    const auto [pixels, mask] = ImageTensors(*images[static_cast<std::size_t>(i)]);
    const auto h = pixels.size(1), w = pixels.size(2);
    pixel_values[i].slice(1, 0, h).slice(2, 0, w).copy_(pixels);
    pixel_mask[i].slice(0, 0, h).slice(1, 0, w).copy_(mask);
  }
  return {pixel_values, pixel_mask};
}

}  // namespace detr::core
