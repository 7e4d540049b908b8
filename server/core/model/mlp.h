// The box head: a stack of linear layers with ReLU between (official `MLP`,
// checkpoint names layers.0, layers.1, ...).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

namespace detr::core {

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t input_dim, int64_t hidden_dim, int64_t output_dim, int num_layers);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(Mlp);

}  // namespace detr::core
