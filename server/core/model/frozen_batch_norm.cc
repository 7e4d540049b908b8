#include "server/core/model/frozen_batch_norm.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

namespace detr::core {

FrozenBatchNorm2dImpl::FrozenBatchNorm2dImpl(int64_t channels) {
  weight = register_buffer("weight", at::ones({channels}));
  bias = register_buffer("bias", at::zeros({channels}));
  running_mean = register_buffer("running_mean", at::zeros({channels}));
  running_var = register_buffer("running_var", at::ones({channels}));
}

at::Tensor FrozenBatchNorm2dImpl::forward(const at::Tensor& x) {
  if (folded_) return x;
  // Frozen ones too through LibTorch's fused kernel when the activations are
  // bfloat16 (BackboneImpl::UseBfloat16Training): it takes them as they are,
  // where x * scale + shift promotes them to float32. Measured here
  // (ResNet-18, 16 images of 512 px, forward and backward, stem and layer1
  // frozen): 0.8 s against 1.4-2.1 s.
  const bool bfloat16 = x.scalar_type() == at::kBFloat16;
  if (is_training() && (trainable_ || bfloat16)) {
    return at::batch_norm(x, weight, bias, running_mean, running_var, /*training=*/trainable_, /*momentum=*/0.1, kEps,
                          /*cudnn_enabled=*/false);
  }
  // Same order of operations as the official module, for bit-level parity.
  auto scale = weight * (running_var + kEps).rsqrt();
  auto shift = bias - running_mean * scale;
  return x * scale.view({1, -1, 1, 1}) + shift.view({1, -1, 1, 1});
}

void FrozenBatchNorm2dImpl::SetTrainable(bool trainable) {
  trainable_ = trainable;
  weight.requires_grad_(trainable);
  bias.requires_grad_(trainable);
}

void FrozenBatchNorm2dImpl::FoldInto(torch::nn::Conv2dImpl& conv) {
  TORCH_CHECK(!folded_, "FrozenBatchNorm2d folded twice");
  TORCH_CHECK(!conv.bias.defined(), "FoldInto expects a convolution without bias, as in ResNet");
  torch::NoGradGuard no_grad;
  auto scale = weight * (running_var + kEps).rsqrt();
  auto shift = bias - running_mean * scale;
  conv.weight.mul_(scale.view({-1, 1, 1, 1}));
  // A bias-free Conv2d has an undefined "bias" registered, so a new parameter
  // cannot be added; its forward() reads the `bias` member, though. Point it
  // at this module's (registered) bias buffer holding the shift, so that
  // moving the model moves both.
  bias.copy_(shift);
  conv.bias = bias;
  folded_ = true;
}

}  // namespace detr::core
