// Safetensors <-> torch tensors.
#pragma once

#include <map>
#include <string>

#include <ATen/Tensor.h>

namespace detr::core {

/// Tensors by name, in name order (a checkpoint, or a model's inputs/outputs).
using TensorMap = std::map<std::string, at::Tensor>;

/// Reads every tensor of a safetensors file into owned CPU tensors of the
/// file's dtype. Throws safetensors::FormatError naming the file and key.
TensorMap LoadSafetensors(const std::string& path);

/// Writes contiguous CPU copies of `tensors` as a safetensors file.
void SaveSafetensors(const std::string& path, const TensorMap& tensors,
                     const std::map<std::string, std::string>& metadata = {});

}  // namespace detr::core
