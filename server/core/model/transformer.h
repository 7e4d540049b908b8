// DETR's encoder-decoder transformer (post-norm by default, pre-norm with
// normalize_before), batch-first, with the official checkpoint names:
// encoder.layers.N.{self_attn,linear1,linear2,norm1,norm2}, encoder.norm
// (pre-norm only), decoder.layers.N.{self_attn,multihead_attn,linear1,linear2,
// norm1,norm2,norm3}, decoder.norm.
#pragma once

#include <string>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "server/core/api/model_config.h"
#include "server/core/model/multihead_attention.h"

namespace detr::core {

class EncoderLayerImpl : public torch::nn::Module {
 public:
  EncoderLayerImpl(const ModelConfig& config, int index);
  /// src, pos: (B, L, d); padding: (B, L) bool; grid: the L tokens' feature
  /// map. Returns (B, L, d).
  at::Tensor forward(const at::Tensor& src, const at::Tensor& pos, const at::Tensor& padding, TokenGrid grid = {});

 private:
  at::Tensor FeedForward(const at::Tensor& x);
  at::Tensor Drop(const at::Tensor& x);  // the official dropout while training
  bool normalize_before_;
  double dropout_;
  MultiheadAttention self_attn{nullptr};
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
};
TORCH_MODULE(EncoderLayer);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelConfig& config, int index);
  /// tgt, query_pos: (B, Q, d); memory: (B, L, d); memory_keys: memory + its
  /// position embedding (the same for every layer, so the decoder adds it
  /// once); memory_padding: (B, L); pos: the memory's position embedding,
  /// which a cross site with position_projection maps before adding.
  at::Tensor forward(const at::Tensor& tgt, const at::Tensor& memory, const at::Tensor& memory_keys,
                     const at::Tensor& memory_padding, const at::Tensor& pos, const at::Tensor& query_pos);

 private:
  at::Tensor FeedForward(const at::Tensor& x);
  at::Tensor Drop(const at::Tensor& x);  // the official dropout while training
  bool normalize_before_;
  double dropout_;
  MultiheadAttention self_attn{nullptr}, multihead_attn{nullptr};
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
};
TORCH_MODULE(DecoderLayer);

class TransformerEncoderImpl : public torch::nn::Module {
 public:
  explicit TransformerEncoderImpl(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& src, const at::Tensor& pos, const at::Tensor& padding, TokenGrid grid = {});

 private:
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm norm{nullptr};  // pre-norm only
};
TORCH_MODULE(TransformerEncoder);

class TransformerDecoderImpl : public torch::nn::Module {
 public:
  explicit TransformerDecoderImpl(const ModelConfig& config);
  /// Returns (num_outputs, B, Q, d): every layer's normalised output when
  /// all_layers (DETR's auxiliary losses), else the last layer's only.
  at::Tensor forward(const at::Tensor& tgt, const at::Tensor& memory, const at::Tensor& memory_padding,
                     const at::Tensor& pos, const at::Tensor& query_pos, bool all_layers);

 private:
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(TransformerDecoder);

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const ModelConfig& config);
  /// src: (B, L, d) projected features; padding: (B, L); query_embed: (Q, d);
  /// pos: (B, L, d); grid: the feature map that src flattens. Returns the
  /// decoder output (num_outputs, B, Q, d).
  at::Tensor forward(const at::Tensor& src, const at::Tensor& padding, const at::Tensor& query_embed,
                     const at::Tensor& pos, bool all_layers, TokenGrid grid = {});

 private:
  TransformerEncoder encoder{nullptr};
  TransformerDecoder decoder{nullptr};
};
TORCH_MODULE(Transformer);

}  // namespace detr::core
