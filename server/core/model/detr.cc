#include "server/core/model/detr.h"

#include <set>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "server/core/model/position_encoding.h"

namespace detr::core {
namespace {

// Bytes of a module's parameters and buffers, each storage once.
std::uint64_t TensorBytes(const torch::nn::Module& module) {
  std::set<const void*> storages;
  std::uint64_t bytes = 0;
  const auto count = [&](const at::Tensor& t) {
    if (t.defined() && storages.insert(t.storage().data()).second) bytes += t.storage().nbytes();
  };
  for (const auto& p : module.parameters()) count(p);
  for (const auto& b : module.buffers()) count(b);
  return bytes;
}

}  // namespace

DetrImpl::DetrImpl(const ModelConfig& config) : config_(config) {
  config_.Validate();
  backbone0 = Backbone(config.backbone, config.dilation);
  backbone = register_module("backbone", torch::nn::ModuleList(backbone0));
  input_proj = register_module(
      "input_proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(backbone0->num_channels(), config.hidden_dim, 1)));
  query_embed = register_module("query_embed", torch::nn::Embedding(config.num_queries, config.hidden_dim));
  transformer = register_module("transformer", Transformer(config));
  class_embed = register_module("class_embed", torch::nn::Linear(config.hidden_dim, config.num_classes + 1));
  bbox_embed = register_module("bbox_embed", Mlp(config.hidden_dim, config.hidden_dim, 4, 3));
  // Counted now: folding batch-norms later adds convolution biases.
  for (const auto& p : parameters()) parameter_count_ += p.numel();
}

DetrOutput DetrImpl::forward(const at::Tensor& pixel_values, const at::Tensor& pixel_mask, bool all_layers) {
  TORCH_CHECK(pixel_values.dim() == 4 && pixel_values.size(1) == 3, "pixel_values must be (B, 3, H, W), got ",
              pixel_values.sizes());
  TORCH_CHECK(pixel_mask.dim() == 3 && pixel_mask.size(0) == pixel_values.size(0) &&
                  pixel_mask.size(1) == pixel_values.size(2) && pixel_mask.size(2) == pixel_values.size(3),
              "pixel_mask must be (B, H, W) matching pixel_values, got ", pixel_mask.sizes());
  auto [features, mask] = backbone0(pixel_values, pixel_mask.to(at::kBool));
  auto pos = SinePositionEmbedding(mask, config_.hidden_dim / 2).to(features.scalar_type());
  // (B, C, h, w) -> (B, h*w, C): the token sequence, batch-first.
  // Contiguous, so that every linear layer takes LibTorch's fused addmm path.
  auto src = input_proj(features).flatten(2).transpose(1, 2).contiguous();
  auto pos_seq = pos.flatten(2).transpose(1, 2).contiguous();
  // Without any padding in the batch, attention needs no mask at all.
  auto padding = mask.any().item<bool>() ? mask.flatten(1) : at::Tensor();
  const TokenGrid grid{features.size(2), features.size(3)};
  auto hs = transformer(src, padding, query_embed->weight, pos_seq, all_layers, grid);

  auto logits = class_embed(hs);
  auto boxes = bbox_embed(hs).sigmoid();
  DetrOutput out{logits[-1], boxes[-1], {}};
  for (int64_t i = 0; i + 1 < hs.size(0); ++i) out.aux.emplace_back(logits[i], boxes[i]);
  return out;
}

void DetrImpl::PrepareForInference(bool onednn_backbone, OneDnnResNet::Options backbone) {
  if (prepared_) return;
  eval();
  for (auto& p : parameters()) p.set_requires_grad(false);
  backbone0->PrepareForInference(onednn_backbone, std::move(backbone));
  prepared_ = true;
  tensor_bytes_ = TensorBytes(*this);
}

int64_t DetrImpl::parameter_count() const { return parameter_count_; }

ModelMemory DetrImpl::memory() const {
  ModelMemory use = backbone0->onednn() ? backbone0->onednn()->Memory() : ModelMemory{};
  use.weight_bytes += prepared_ ? tensor_bytes_ : TensorBytes(*this);
  return use;
}

}  // namespace detr::core
