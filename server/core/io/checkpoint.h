// Loading weights into a model by name, strictly, with a report.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "server/core/io/tensor_io.h"

namespace detr::core {

/// A checkpoint that does not fit the model. The message lists every
/// problem, each naming its key.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LoadReport {
  std::vector<std::string> skipped;  ///< tensors the model's attention types do not use
  int64_t loaded = 0;                ///< parameters and buffers filled
};

/// Copies `state` into `model`'s parameters and buffers by name (converting
/// float dtypes, e.g. float16 storage, to the model's). Every model tensor
/// must be present with its shape, and every checkpoint tensor must be used,
/// except the q/k rows that non-softmax attention sites skip (reported).
/// `source` names the checkpoint in messages. Throws CheckpointError.
LoadReport LoadStateDict(torch::nn::Module& model, TensorMap state, const std::string& source);

/// LoadStateDict from a safetensors file.
LoadReport LoadWeightsFile(torch::nn::Module& model, const std::string& path);

/// The model's parameters and buffers by name (contiguous copies).
TensorMap StateDict(const torch::nn::Module& model);

}  // namespace detr::core
