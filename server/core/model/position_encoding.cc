#include "server/core/model/position_encoding.h"

#include <cmath>

#include <ATen/ATen.h>

namespace detr::core {
namespace {

// (B, H, W) positions -> (B, H, W, num_pos_feats): sin on even, cos on odd features.
at::Tensor Encode(const at::Tensor& positions, const at::Tensor& dim_t) {
  auto p = positions.unsqueeze(-1) / dim_t;
  auto sin = p.slice(-1, 0, c10::nullopt, 2).sin();
  auto cos = p.slice(-1, 1, c10::nullopt, 2).cos();
  return at::stack({sin, cos}, 4).flatten(3);
}

}  // namespace

at::Tensor SinePositionEmbedding(const at::Tensor& mask, int64_t num_pos_feats, double temperature) {
  constexpr double kScale = 2 * M_PI;
  constexpr double kEps = 1e-6;
  auto not_mask = mask.logical_not();
  auto y_embed = not_mask.cumsum(1, at::kFloat);
  auto x_embed = not_mask.cumsum(2, at::kFloat);
  y_embed = y_embed / (y_embed.slice(1, -1) + kEps) * kScale;
  x_embed = x_embed / (x_embed.slice(2, -1) + kEps) * kScale;

  auto dim_t = at::arange(num_pos_feats, mask.options().dtype(at::kFloat));
  dim_t = at::pow(temperature, 2 * at::floor_divide(dim_t, 2) / num_pos_feats);

  auto pos = at::cat({Encode(y_embed, dim_t), Encode(x_embed, dim_t)}, 3);
  return pos.permute({0, 3, 1, 2});
}

}  // namespace detr::core
