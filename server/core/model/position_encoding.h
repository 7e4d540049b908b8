// DETR's sine position embedding (no parameters).
#pragma once

#include <ATen/Tensor.h>

namespace detr::core {

/// The official PositionEmbeddingSine with normalize=True (as DETR builds it):
/// cumulative row/column counts of unpadded pixels, scaled to [0, 2*pi], then
/// sin/cos at temperature 10000.
///
/// mask: (B, H, W) bool, true = padding. Returns (B, 2 * num_pos_feats, H, W)
/// float32: the y half first, then the x half.
at::Tensor SinePositionEmbedding(const at::Tensor& mask, int64_t num_pos_feats, double temperature = 10000.0);

}  // namespace detr::core
