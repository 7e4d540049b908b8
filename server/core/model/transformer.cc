#include "server/core/model/transformer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "server/core/kernels/onednn_matmul.h"

namespace detr::core {
namespace {

MultiheadAttention MakeAttention(const ModelConfig& config, AttentionSite site, int layer) {
  MultiheadAttention attention(config.hidden_dim, config.nheads, site, config.attention(site),
                               std::string(ToString(site)) + "." + std::to_string(layer));
  attention->set_weight_dropout(config.dropout);
  return attention;
}

// Dropout as the official training applies it: only while training, and
// only with gradients, so that inference is the same in either mode.
at::Tensor DropWhileTraining(const at::Tensor& x, double p, bool training) {
  return p > 0 && training && at::GradMode::is_enabled() ? at::dropout(x, p, /*train=*/true) : x;
}

torch::nn::LayerNorm MakeNorm(const ModelConfig& config) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.hidden_dim}));
}

// linear2(dropout(relu(linear1(x)))), the ReLU fused into the first product.
at::Tensor FeedForwardOf(const torch::nn::Linear& linear1, const torch::nn::Linear& linear2, const at::Tensor& x,
                         double dropout, bool training) {
  auto hidden = Linear(x, linear1->weight, linear1->bias, /*relu=*/true);
  return Linear(DropWhileTraining(hidden, dropout, training), linear2->weight, linear2->bias);
}

// Self-attention over x with its positional term: queries and keys are one
// tensor (one q/k product for softmax sites) unless the site projects the
// positions, which gives queries and keys positions of their own.
at::Tensor SelfAttention(MultiheadAttention& attention, const at::Tensor& x, const at::Tensor& pos,
                         const at::Tensor& padding = {}, TokenGrid grid = {}) {
  const auto q = x + attention->QueryPosition(pos);
  const auto k = attention->HasPositionProjection() ? x + attention->KeyPosition(pos) : q;
  return attention(q, k, x, padding, grid);
}

}  // namespace

EncoderLayerImpl::EncoderLayerImpl(const ModelConfig& config, int index)
    : normalize_before_(config.normalize_before), dropout_(config.dropout) {
  self_attn = register_module("self_attn", MakeAttention(config, AttentionSite::kEncoderSelf, index));
  linear1 = register_module("linear1", torch::nn::Linear(config.hidden_dim, config.dim_feedforward));
  linear2 = register_module("linear2", torch::nn::Linear(config.dim_feedforward, config.hidden_dim));
  norm1 = register_module("norm1", MakeNorm(config));
  norm2 = register_module("norm2", MakeNorm(config));
}

at::Tensor EncoderLayerImpl::FeedForward(const at::Tensor& x) {
  return FeedForwardOf(linear1, linear2, x, dropout_, is_training());
}
at::Tensor EncoderLayerImpl::Drop(const at::Tensor& x) { return DropWhileTraining(x, dropout_, is_training()); }

at::Tensor EncoderLayerImpl::forward(const at::Tensor& src, const at::Tensor& pos, const at::Tensor& padding,
                                     TokenGrid grid) {
  if (normalize_before_) {
    auto x = norm1(src);
    auto out = src + Drop(SelfAttention(self_attn, x, pos, padding, grid));
    return out + Drop(FeedForward(norm2(out)));
  }
  auto out = norm1(src + Drop(SelfAttention(self_attn, src, pos, padding, grid)));
  return norm2(out + Drop(FeedForward(out)));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& config, int index)
    : normalize_before_(config.normalize_before), dropout_(config.dropout) {
  self_attn = register_module("self_attn", MakeAttention(config, AttentionSite::kDecoderSelf, index));
  multihead_attn = register_module("multihead_attn", MakeAttention(config, AttentionSite::kDecoderCross, index));
  linear1 = register_module("linear1", torch::nn::Linear(config.hidden_dim, config.dim_feedforward));
  linear2 = register_module("linear2", torch::nn::Linear(config.dim_feedforward, config.hidden_dim));
  norm1 = register_module("norm1", MakeNorm(config));
  norm2 = register_module("norm2", MakeNorm(config));
  norm3 = register_module("norm3", MakeNorm(config));
}

at::Tensor DecoderLayerImpl::FeedForward(const at::Tensor& x) {
  return FeedForwardOf(linear1, linear2, x, dropout_, is_training());
}
at::Tensor DecoderLayerImpl::Drop(const at::Tensor& x) { return DropWhileTraining(x, dropout_, is_training()); }

at::Tensor DecoderLayerImpl::forward(const at::Tensor& tgt, const at::Tensor& memory, const at::Tensor& keys,
                                     const at::Tensor& memory_padding, const at::Tensor& pos,
                                     const at::Tensor& query_pos) {
  // A cross site that projects the memory's positions has keys of its own.
  const auto cross_keys = multihead_attn->HasPositionProjection() ? memory + multihead_attn->KeyPosition(pos) : keys;
  const auto cross_query_pos = multihead_attn->QueryPosition(query_pos);
  if (normalize_before_) {
    auto x = norm1(tgt);
    auto out = tgt + Drop(SelfAttention(self_attn, x, query_pos));
    x = norm2(out);
    out = out + Drop(multihead_attn(x + cross_query_pos, cross_keys, memory, memory_padding));
    return out + Drop(FeedForward(norm3(out)));
  }
  auto out = norm1(tgt + Drop(SelfAttention(self_attn, tgt, query_pos)));
  out = norm2(out + Drop(multihead_attn(out + cross_query_pos, cross_keys, memory, memory_padding)));
  return norm3(out + Drop(FeedForward(out)));
}

TransformerEncoderImpl::TransformerEncoderImpl(const ModelConfig& config) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < config.enc_layers; ++i) layers->push_back(EncoderLayer(config, i));
  if (config.normalize_before) norm = register_module("norm", MakeNorm(config));
}

at::Tensor TransformerEncoderImpl::forward(const at::Tensor& src, const at::Tensor& pos, const at::Tensor& padding,
                                           TokenGrid grid) {
  auto out = src;
  for (const auto& layer : *layers) out = layer->as<EncoderLayerImpl>()->forward(out, pos, padding, grid);
  return norm ? norm(out) : out;
}

TransformerDecoderImpl::TransformerDecoderImpl(const ModelConfig& config) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < config.dec_layers; ++i) layers->push_back(DecoderLayer(config, i));
  norm = register_module("norm", MakeNorm(config));
}

at::Tensor TransformerDecoderImpl::forward(const at::Tensor& tgt, const at::Tensor& memory,
                                           const at::Tensor& memory_padding, const at::Tensor& pos,
                                           const at::Tensor& query_pos, bool all_layers) {
  std::vector<at::Tensor> outputs;
  const auto memory_keys = memory + pos;
  auto out = tgt;
  for (const auto& layer : *layers) {
    out = layer->as<DecoderLayerImpl>()->forward(out, memory, memory_keys, memory_padding, pos, query_pos);
    if (all_layers) outputs.push_back(norm(out));
  }
  if (!all_layers) outputs.push_back(norm(out));
  return at::stack(outputs);
}

TransformerImpl::TransformerImpl(const ModelConfig& config) {
  encoder = register_module("encoder", TransformerEncoder(config));
  decoder = register_module("decoder", TransformerDecoder(config));
}

at::Tensor TransformerImpl::forward(const at::Tensor& src, const at::Tensor& padding, const at::Tensor& query_embed,
                                    const at::Tensor& pos, bool all_layers, TokenGrid grid) {
  const auto batch = src.size(0);
  auto query_pos = query_embed.unsqueeze(0).expand({batch, -1, -1});
  auto tgt = at::zeros_like(query_pos);
  auto memory = encoder(src, pos, padding, grid);
  return decoder(tgt, memory, padding, pos, query_pos, all_layers);
}

}  // namespace detr::core
