#include "server/core/model/mlp.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

namespace detr::core {

MlpImpl::MlpImpl(int64_t input_dim, int64_t hidden_dim, int64_t output_dim, int num_layers) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < num_layers; ++i) {
    const int64_t in = i == 0 ? input_dim : hidden_dim;
    const int64_t out = i == num_layers - 1 ? output_dim : hidden_dim;
    layers->push_back(torch::nn::Linear(in, out));
  }
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  auto out = x;
  for (size_t i = 0; i < layers->size(); ++i) {
    out = layers[i]->as<torch::nn::LinearImpl>()->forward(out);
    if (i + 1 < layers->size()) out = out.relu();
  }
  return out;
}

}  // namespace detr::core
