// backbone.0 of the official checkpoint: the ResNet body ("body") whose last
// stage feeds the transformer, plus the padding mask resized to its grid.
#pragma once

#include <string>
#include <utility>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "server/core/model/resnet.h"

namespace detr::core {

class BackboneImpl : public torch::nn::Module {
 public:
  BackboneImpl(const std::string& name, bool dilation);

  /// pixel_values: (B, 3, H, W); pixel_mask: (B, H, W) bool, true = padding.
  /// Returns features (B, C, h, w) and their mask (B, h, w).
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& pixel_values, const at::Tensor& pixel_mask);

  void PrepareForInference(bool use_onednn = true, OneDnnResNet::Options options = {});
  /// Training speed: while training, run the body's convolutions in bfloat16
  /// (CPU autocast; weights and their gradients stay float32) on channels-last
  /// tensors, and hand the transformer float32 features. Eval-mode passes
  /// stay float32. Only where CpuRunsBfloat16Natively() (runtime.h): with
  /// AMX, detr-train's softmax DETR on 512-px images went from 4.2 to 11.1
  /// images/s (docs/benchmarks.md); without it, bfloat16 is slower or fails.
  void UseBfloat16Training(bool enabled);
  int64_t num_channels() const { return body->num_channels(); }
  /// What runs the backbone's convolutions at inference, and why.
  const std::string& engine() const { return body->engine(); }
  /// The oneDNN body inference passes run through, or null.
  const OneDnnResNet* onednn() const { return body->onednn(); }

 private:
  ResNetBody body{nullptr};
  bool channels_last_ = false;
  bool bfloat16_training_ = false;
};
TORCH_MODULE(Backbone);

}  // namespace detr::core
