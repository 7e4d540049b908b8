// Prepared images (plain memory, api/prepared_image.h) as the model's input
// tensors.
#pragma once

#include <utility>
#include <vector>

#include <ATen/Tensor.h>

#include "server/core/api/prepared_image.h"

namespace detr::core {

/// The image's (3, H, W) float pixels, a view of its memory (no copy: valid
/// while `image` lives), and its (H, W) bool padding mask.
std::pair<at::Tensor, at::Tensor> ImageTensors(const PreparedImage& image);

/// Pads images into one batch as the official nested_tensor_from_tensor_list
/// does: each image's input top-left, zeros bottom/right, mask true on all
/// padding (its own and the batch's). Returns pixel_values (B, 3, H, W) and
/// pixel_mask (B, H, W). A single image is returned as a view, not copied.
std::pair<at::Tensor, at::Tensor> BatchInputs(const std::vector<const PreparedImage*>& images);

}  // namespace detr::core
