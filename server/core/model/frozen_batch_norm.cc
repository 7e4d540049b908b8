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
  if (trainable_ && is_training()) {
    return at::batch_norm(x, weight, bias, running_mean, running_var, /*training=*/true, /*momentum=*/0.1, kEps,
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
