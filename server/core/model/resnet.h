// The ResNet body of DETR's backbone (torchvision's ResNet v1.5 layout, with
// frozen batch-norm), registered under the official checkpoint names:
// conv1, bn1, layer1..layer4, each block conv1/bn1/conv2/bn2[/conv3/bn3] and
// downsample.{0,1}.
#pragma once

#include <memory>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include "server/core/model/frozen_batch_norm.h"
#include "server/core/kernels/onednn_resnet.h"

namespace detr::core {

/// A BasicBlock (resnet18/34) or a Bottleneck (resnet50/101).
class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(bool bottleneck, int64_t in_channels, int64_t planes, int64_t stride, int64_t dilation,
                    bool with_downsample);

  at::Tensor forward(const at::Tensor& x);
  void FoldBatchNorms();
  /// The folded convolutions, for OneDnnResNet.
  ResidualBlockParams Params() const;

 private:
  bool bottleneck_;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  FrozenBatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};  // {0: 1x1 conv, 1: FrozenBatchNorm2d}
};
TORCH_MODULE(ResidualBlock);

class ResNetBodyImpl : public torch::nn::Module {
 public:
  /// name: resnet18, resnet34, resnet50 or resnet101. dilate_last: DC5.
  ResNetBodyImpl(const std::string& name, bool dilate_last);

  /// x: (B, 3, H, W) normalised image -> (B, num_channels(), H/32, W/32)
  /// (H/16, W/16 with DC5).
  at::Tensor forward(const at::Tensor& x);

  /// Folds every frozen batch-norm into its convolution and stores the
  /// convolution weights channels-last, the layout oneDNN's CPU kernels prefer.
  /// With `use_onednn` (and oneDNN built in), forward passes without autograd
  /// then run through OneDnnResNet (Winograd 3x3 convolutions), unless oneDNN
  /// offers an implementation `acceptable` refuses for some layer (by
  /// default: its reference code); then they keep LibTorch's convolutions,
  /// and engine() says why.
  /// options: OneDnnResNet's (plans kept, implementations accepted, int8).
  /// An int8 body never falls back to float32 convolutions: where oneDNN
  /// cannot run it, this throws OneDnnResNet::Unavailable saying why (and
  /// std::invalid_argument for ranges that do not fit the body).
  void PrepareForInference(bool use_onednn = true, OneDnnResNet::Options options = {});

  int64_t num_channels() const { return num_channels_; }

  /// For logs: what runs the convolutions of inference passes, and why.
  const std::string& engine() const { return engine_; }
  /// The oneDNN body inference passes run through; null when they run on
  /// LibTorch's convolutions.
  const OneDnnResNet* onednn() const { return onednn_.get(); }

 private:
  torch::nn::Sequential MakeLayer(bool bottleneck, int64_t planes, int64_t blocks, int64_t stride, bool dilate);

  int64_t in_channels_ = 64;
  int64_t dilation_ = 1;
  int64_t num_channels_ = 0;
  torch::nn::Conv2d conv1{nullptr};
  FrozenBatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  std::shared_ptr<const OneDnnResNet> onednn_;  // set by PrepareForInference
  std::string engine_ = "LibTorch convolutions";
};
TORCH_MODULE(ResNetBody);

}  // namespace detr::core
