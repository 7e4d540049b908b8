#include "server/core/io/checkpoint.h"

#include <sstream>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "server/core/model/frozen_batch_norm.h"
#include "server/core/model/multihead_attention.h"

namespace detr::core {
namespace {

std::string ShapeText(at::IntArrayRef sizes) {
  std::ostringstream text;
  text << "[";
  for (size_t i = 0; i < sizes.size(); ++i) text << (i ? ", " : "") << sizes[i];
  text << "]";
  return text.str();
}

// Every named parameter and buffer of the model, as one map.
std::vector<std::pair<std::string, at::Tensor>> ModelTensors(const torch::nn::Module& model) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : model.named_parameters(true)) tensors.emplace_back(item.key(), item.value());
  for (const auto& item : model.named_buffers(true)) tensors.emplace_back(item.key(), item.value());
  return tensors;
}

std::vector<std::string> AdaptAttentionSites(const torch::nn::Module& model, TensorMap& state) {
  std::vector<std::string> skipped;
  for (const auto& item : model.named_modules()) {
    if (const auto* attention = item.value()->as<MultiheadAttentionImpl>()) {
      // The root module (a bare site loaded on its own) has the empty name.
      auto dropped = attention->AdaptCheckpoint(item.key().empty() ? "" : item.key() + ".", state);
      skipped.insert(skipped.end(), dropped.begin(), dropped.end());
    }
  }
  return skipped;
}

}  // namespace

LoadReport LoadStateDict(torch::nn::Module& model, TensorMap state, const std::string& source) {
  for (const auto& item : model.named_modules()) {
    const auto* bn = item.value()->as<FrozenBatchNorm2dImpl>();
    if (bn && bn->folded()) {
      throw CheckpointError(source + ": '" + item.key() +
                            "' is folded into its convolution; weights must be "
                            "loaded before PrepareForInference() folds the batch-norms");
    }
  }
  LoadReport report;
  report.skipped = AdaptAttentionSites(model, state);

  std::vector<std::string> problems;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (destination, source) once all is checked
  for (auto& [name, tensor] : ModelTensors(model)) {
    const auto it = state.find(name);
    if (it == state.end()) {
      problems.push_back("missing key '" + name + "' (expected shape " + ShapeText(tensor.sizes()) + ")");
      continue;
    }
    const auto& value = it->second;
    if (value.sizes() != tensor.sizes()) {
      problems.push_back("key '" + name + "' has shape " + ShapeText(value.sizes()) + ", the model expects " +
                         ShapeText(tensor.sizes()));
    } else if (!at::isFloatingType(value.scalar_type()) && at::isFloatingType(tensor.scalar_type())) {
      problems.push_back(std::string("key '") + name + "' has dtype " + at::toString(value.scalar_type()) +
                         ", the model expects a floating-point tensor");
    } else {
      copies.emplace_back(tensor, value);
    }
    state.erase(it);
  }
  for (const auto& [name, value] : state) {
    problems.push_back("unexpected key '" + name + "' (shape " + ShapeText(value.sizes()) + ") is not in the model");
  }
  if (!problems.empty()) {
    std::ostringstream message;
    message << source << ": " << problems.size() << " problem(s) loading weights:";
    constexpr size_t kMaxListed = 20;
    for (size_t i = 0; i < problems.size() && i < kMaxListed; ++i) message << "\n  " << problems[i];
    if (problems.size() > kMaxListed) message << "\n  ... and " << problems.size() - kMaxListed << " more";
    throw CheckpointError(message.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& [destination, value] : copies) destination.copy_(value);
  report.loaded = static_cast<int64_t>(copies.size());
  return report;
}

LoadReport LoadWeightsFile(torch::nn::Module& model, const std::string& path) {
  return LoadStateDict(model, LoadSafetensors(path), path);
}

TensorMap StateDict(const torch::nn::Module& model) {
  TensorMap state;
  for (auto& [name, tensor] : ModelTensors(model)) state.emplace(name, tensor.detach().contiguous());
  return state;
}

}  // namespace detr::core
