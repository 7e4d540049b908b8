// The DETR detector: backbone, input projection, transformer, class and box
// heads. Submodule and parameter names equal the official state_dict keys
// (backbone.0.body..., input_proj, query_embed, transformer..., class_embed,
// bbox_embed.layers.N), so loading a checkpoint is a name lookup.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "server/core/model/backbone.h"
#include "server/core/model/mlp.h"
#include "server/core/api/model_config.h"
#include "server/core/model/transformer.h"

namespace detr::core {

struct DetrOutput {
  at::Tensor logits;  ///< (B, Q, num_classes + 1) raw class logits, last: "no object"
  at::Tensor boxes;   ///< (B, Q, 4) cx, cy, w, h normalised to [0, 1]
  /// With all_layers: the same pair for each earlier decoder layer
  /// (auxiliary losses), first layer first.
  std::vector<std::pair<at::Tensor, at::Tensor>> aux;
};

class DetrImpl : public torch::nn::Module {
 public:
  explicit DetrImpl(const ModelConfig& config);

  /// pixel_values: (B, 3, H, W) ImageNet-normalised; pixel_mask: (B, H, W)
  /// bool, true = padding.
  DetrOutput forward(const at::Tensor& pixel_values, const at::Tensor& pixel_mask, bool all_layers = false);

  /// Makes the model fast for inference: eval mode, no gradients, frozen
  /// batch-norms folded into their convolutions, channels-last backbone.
  /// Irreversible: load weights before calling it.
  /// onednn_backbone: run the backbone through OneDnnResNet (Winograd, or
  /// int8 with calibrated ranges), as `backbone` says.
  void PrepareForInference(bool onednn_backbone = true, OneDnnResNet::Options backbone = {});
  bool prepared_for_inference() const { return prepared_; }
  /// Training speed: the backbone's convolutions in bfloat16 while training
  /// (BackboneImpl::UseBfloat16Training). Call after loading weights.
  void UseBfloat16BackboneTraining(bool enabled) { backbone0->UseBfloat16Training(enabled); }
  /// For logs: what runs the backbone's convolutions at inference, and why.
  const std::string& backbone_engine() const { return backbone0->engine(); }
  /// The oneDNN body inference passes run through, or null.
  const OneDnnResNet* onednn_backbone() const { return backbone0->onednn(); }
  /// What the model holds now: its parameters and buffers (each storage
  /// once; counted by PrepareForInference, after which they do not change),
  /// and the oneDNN backbone's copy of its weights and its plans. Cheap once
  /// prepared: the server reads it after every batch.
  ModelMemory memory() const;

  const ModelConfig& config() const { return config_; }
  /// Number of parameters as built (frozen batch-norm statistics are buffers).
  int64_t parameter_count() const;

 private:
  ModelConfig config_;
  bool prepared_ = false;
  std::uint64_t tensor_bytes_ = 0;  // parameters and buffers, counted by PrepareForInference
  int64_t parameter_count_ = 0;
  torch::nn::ModuleList backbone{nullptr};  // {0: Backbone}, as the official Joiner
  Backbone backbone0{nullptr};
  torch::nn::Conv2d input_proj{nullptr};
  torch::nn::Embedding query_embed{nullptr};
  Transformer transformer{nullptr};
  torch::nn::Linear class_embed{nullptr};
  Mlp bbox_embed{nullptr};
};
TORCH_MODULE(Detr);

}  // namespace detr::core
