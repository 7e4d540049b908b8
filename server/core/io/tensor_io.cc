#include "server/core/io/tensor_io.h"

#include <cstring>
#include <vector>

#include <ATen/ATen.h>

#include "server/core/io/safetensors.h"

namespace detr::core {
namespace {

using safetensors::DType;

at::ScalarType ToScalarType(DType dtype) {
  switch (dtype) {
    case DType::kBool: return at::kBool;
    case DType::kU8: return at::kByte;
    case DType::kI8: return at::kChar;
    case DType::kI16: return at::kShort;
    case DType::kI32: return at::kInt;
    case DType::kI64: return at::kLong;
    case DType::kF16: return at::kHalf;
    case DType::kBF16: return at::kBFloat16;
    case DType::kF32: return at::kFloat;
    case DType::kF64: return at::kDouble;
  }
  throw safetensors::FormatError("unknown dtype");
}

DType ToDType(at::ScalarType type) {
  switch (type) {
    case at::kBool: return DType::kBool;
    case at::kByte: return DType::kU8;
    case at::kChar: return DType::kI8;
    case at::kShort: return DType::kI16;
    case at::kInt: return DType::kI32;
    case at::kLong: return DType::kI64;
    case at::kHalf: return DType::kF16;
    case at::kBFloat16: return DType::kBF16;
    case at::kFloat: return DType::kF32;
    case at::kDouble: return DType::kF64;
    default: throw std::invalid_argument(std::string("cannot store dtype ") + at::toString(type));
  }
}

}  // namespace

TensorMap LoadSafetensors(const std::string& path) {
  const auto file = safetensors::File::Read(path);
  TensorMap tensors;
  for (const auto& [key, info] : file.tensors()) {
    auto tensor = at::empty(info.shape, at::TensorOptions().dtype(ToScalarType(info.dtype)));
    std::memcpy(tensor.data_ptr(), file.data(key), info.end - info.begin);
    tensors.emplace(key, std::move(tensor));
  }
  return tensors;
}

void SaveSafetensors(const std::string& path, const TensorMap& tensors,
                     const std::map<std::string, std::string>& metadata) {
  std::map<std::string, at::Tensor> contiguous;
  std::map<std::string, safetensors::TensorBytes> bytes;
  for (const auto& [key, tensor] : tensors) {
    auto cpu = tensor.detach().to(at::kCPU).contiguous();
    bytes[key] = {ToDType(cpu.scalar_type()), cpu.sizes().vec(), cpu.data_ptr(), cpu.nbytes()};
    contiguous.emplace(key, std::move(cpu));  // keeps the bytes alive until written
  }
  safetensors::Write(path, bytes, metadata);
}

}  // namespace detr::core
