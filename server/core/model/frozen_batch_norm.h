// Batch-norm with fixed statistics, as the official DETR backbone uses it.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

namespace detr::core {

/// y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, with all
/// four as buffers (never trained), named as the official checkpoint names them.
///
/// For inference the affine map is folded into the convolution before it
/// (FoldInto); the module then passes its input through unchanged. That saves
/// a full read and write of every backbone activation.
class FrozenBatchNorm2dImpl : public torch::nn::Module {
 public:
  static constexpr double kEps = 1e-5;  // the official FrozenBatchNorm2d's epsilon

  explicit FrozenBatchNorm2dImpl(int64_t channels);

  /// x: (B, C, H, W) -> (B, C, H, W)
  at::Tensor forward(const at::Tensor& x);

  /// Rewrites `conv` (no bias, or a bias) so that conv'(x) == this(conv(x)),
  /// and turns this module into the identity.
  void FoldInto(torch::nn::Conv2dImpl& conv);
  bool folded() const { return folded_; }

  /// For training from scratch: in training mode, normalise with batch
  /// statistics (updating the running ones) and train weight and bias.
  /// Frozen statistics of a random initialisation normalise nothing and
  /// stall training (../shared/notes). Names and export are unchanged, and
  /// eval mode computes exactly the frozen formula.
  void SetTrainable(bool trainable);
  bool trainable() const { return trainable_; }

  at::Tensor weight, bias, running_mean, running_var;

 private:
  bool folded_ = false;
  bool trainable_ = false;
};
TORCH_MODULE(FrozenBatchNorm2d);

}  // namespace detr::core
