#include "server/core/model/resnet.h"

#include <stdexcept>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/nn/functional/pooling.h>

namespace detr::core {
namespace {

torch::nn::Conv2d Conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation = 1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).dilation(dilation).bias(false));
}

ConvParams ParamsOf(const torch::nn::Conv2dImpl& conv) {
  TORCH_CHECK(conv.bias.defined(), "the batch-norms must be folded into the convolutions first");
  // Every ResNet convolution pads to keep "same" geometry, as Conv() builds
  // them; computed rather than read, since the padding option's variant type
  // differs between LibTorch versions.
  const int64_t dilation = conv.options.dilation()->at(0);
  return {conv.weight, conv.bias, conv.options.stride()->at(0), dilation * (conv.weight.size(2) - 1) / 2, dilation};
}

void ToChannelsLast(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& conv : module.modules()) {
    if (auto* c = conv->as<torch::nn::Conv2dImpl>()) {
      c->weight.set_data(c->weight.contiguous(at::MemoryFormat::ChannelsLast));
    }
  }
}

}  // namespace

ResidualBlockImpl::ResidualBlockImpl(bool bottleneck, int64_t in_channels, int64_t planes, int64_t stride,
                                     int64_t dilation, bool with_downsample)
    : bottleneck_(bottleneck) {
  const int64_t expansion = bottleneck ? 4 : 1;
  if (bottleneck) {
    // torchvision's v1.5 bottleneck: the stride sits on the 3x3 convolution.
    conv1 = register_module("conv1", Conv(in_channels, planes, 1, 1, 0));
    bn1 = register_module("bn1", FrozenBatchNorm2d(planes));
    conv2 = register_module("conv2", Conv(planes, planes, 3, stride, dilation, dilation));
    bn2 = register_module("bn2", FrozenBatchNorm2d(planes));
    conv3 = register_module("conv3", Conv(planes, planes * expansion, 1, 1, 0));
    bn3 = register_module("bn3", FrozenBatchNorm2d(planes * expansion));
  } else {
    if (dilation > 1) throw std::invalid_argument("dilation > 1 is not supported in BasicBlock");
    conv1 = register_module("conv1", Conv(in_channels, planes, 3, stride, 1));
    bn1 = register_module("bn1", FrozenBatchNorm2d(planes));
    conv2 = register_module("conv2", Conv(planes, planes, 3, 1, 1));
    bn2 = register_module("bn2", FrozenBatchNorm2d(planes));
  }
  if (with_downsample) {
    downsample =
        register_module("downsample", torch::nn::Sequential(Conv(in_channels, planes * expansion, 1, stride, 0),
                                                            FrozenBatchNorm2d(planes * expansion)));
  }
}

at::Tensor ResidualBlockImpl::forward(const at::Tensor& x) {
  auto out = bn1(conv1(x)).relu_();
  out = bn2(conv2(out));
  if (bottleneck_) out = bn3(conv3(out.relu_()));
  auto identity = downsample ? downsample->forward(x) : x;
  // Inference: one fused pass over the block's output instead of two.
  if (!at::GradMode::is_enabled()) return at::_add_relu_(out, identity);
  return out.add_(identity).relu_();
}

void ResidualBlockImpl::FoldBatchNorms() {
  bn1->FoldInto(*conv1);
  bn2->FoldInto(*conv2);
  if (bottleneck_) bn3->FoldInto(*conv3);
  if (downsample) {
    downsample->ptr(1)->as<FrozenBatchNorm2dImpl>()->FoldInto(*downsample->ptr(0)->as<torch::nn::Conv2dImpl>());
  }
}

ResidualBlockParams ResidualBlockImpl::Params() const {
  ResidualBlockParams params;
  params.convs = {ParamsOf(*conv1), ParamsOf(*conv2)};
  if (bottleneck_) params.convs.push_back(ParamsOf(*conv3));
  if (downsample) params.downsample = ParamsOf(*downsample->ptr(0)->as<torch::nn::Conv2dImpl>());
  return params;
}

ResNetBodyImpl::ResNetBodyImpl(const std::string& name, bool dilate_last) {
  bool bottleneck = true;
  std::vector<int64_t> blocks;
  if (name == "resnet18") {
    bottleneck = false;
    blocks = {2, 2, 2, 2};
  } else if (name == "resnet34") {
    bottleneck = false;
    blocks = {3, 4, 6, 3};
  } else if (name == "resnet50") {
    blocks = {3, 4, 6, 3};
  } else if (name == "resnet101") {
    blocks = {3, 4, 23, 3};
  } else throw std::invalid_argument("unknown backbone '" + name + "'");

  conv1 = register_module("conv1", Conv(3, 64, 7, 2, 3));
  bn1 = register_module("bn1", FrozenBatchNorm2d(64));
  layer1 = register_module("layer1", MakeLayer(bottleneck, 64, blocks[0], 1, false));
  layer2 = register_module("layer2", MakeLayer(bottleneck, 128, blocks[1], 2, false));
  layer3 = register_module("layer3", MakeLayer(bottleneck, 256, blocks[2], 2, false));
  layer4 = register_module("layer4", MakeLayer(bottleneck, 512, blocks[3], 2, dilate_last));
  num_channels_ = in_channels_;
}

torch::nn::Sequential ResNetBodyImpl::MakeLayer(bool bottleneck, int64_t planes, int64_t blocks, int64_t stride,
                                                bool dilate) {
  const int64_t expansion = bottleneck ? 4 : 1;
  const int64_t previous_dilation = dilation_;
  if (dilate) {  // DC5: trade the stride for dilation, as torchvision does
    dilation_ *= stride;
    stride = 1;
  }
  const bool with_downsample = stride != 1 || in_channels_ != planes * expansion;
  torch::nn::Sequential layer;
  layer->push_back(ResidualBlock(bottleneck, in_channels_, planes, stride, previous_dilation, with_downsample));
  in_channels_ = planes * expansion;
  for (int64_t i = 1; i < blocks; ++i) {
    layer->push_back(ResidualBlock(bottleneck, in_channels_, planes, 1, dilation_, false));
  }
  return layer;
}

at::Tensor ResNetBodyImpl::forward(const at::Tensor& x) {
  if (onednn_ && !at::GradMode::is_enabled()) {
    try {
      return onednn_->forward(x);
    } catch (const OneDnnResNet::Unavailable&) {
      if (onednn_->int8()) throw;  // never float32 in an int8 model's place
      // This input shape has no acceptable oneDNN plan (the probe shape had
      // one): LibTorch's convolutions run it, on the same folded weights.
    }
  }
  auto out = bn1(conv1(x)).relu_();
  out = at::max_pool2d(out, {3, 3}, {2, 2}, {1, 1});
  out = layer1->forward(out);
  out = layer2->forward(out);
  out = layer3->forward(out);
  return layer4->forward(out);
}

void ResNetBodyImpl::PrepareForInference(bool use_onednn, OneDnnResNet::Options options) {
  bn1->FoldInto(*conv1);
  std::vector<ResidualBlockParams> blocks;
  for (const auto& [layer_name, layer] :
       {std::pair{"layer1", &layer1}, {"layer2", &layer2}, {"layer3", &layer3}, {"layer4", &layer4}}) {
    const std::size_t first_block = blocks.size();
    for (auto& block : **layer) {
      auto* residual = block.ptr()->as<ResidualBlockImpl>();
      residual->FoldBatchNorms();
      blocks.push_back(residual->Params());
      blocks.back().name = std::string(layer_name) + "." + std::to_string(blocks.size() - 1 - first_block);
    }
  }
  ToChannelsLast(*this);
  engine_ = "LibTorch convolutions (channels-last, folded batch-norm)";
  const bool int8 = options.int8.has_value();
  if (!use_onednn || !OneDnnResNet::Available()) {
    if (int8) throw OneDnnResNet::Unavailable("int8 needs oneDNN's int8 convolutions; this build or call has none");
    return;
  }
  try {
    onednn_ = std::make_shared<const OneDnnResNet>(ParamsOf(*conv1), blocks, std::move(options));
    engine_ = "oneDNN " + onednn_->Summary();
  } catch (const OneDnnResNet::Unavailable& e) {
    if (int8) throw OneDnnResNet::Unavailable("int8 cannot run here: " + std::string(e.what()));
    engine_ += ", because " + std::string(e.what());
  }
}

}  // namespace detr::core
