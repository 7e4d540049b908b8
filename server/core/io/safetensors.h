// Safetensors files (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length, a JSON header, then the raw tensor bytes.
//
// This header is deliberately free of LibTorch: the parser validates untrusted
// bytes and is tested (under AddressSanitizer too) without the ML stack.
// tensor_io.h turns a parsed file into torch tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace detr::core::safetensors {

/// Every problem with a file: the message names the file and, where there is
/// one, the tensor key.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class DType { kBool, kU8, kI8, kI16, kI32, kI64, kF16, kBF16, kF32, kF64 };

/// Bytes per element of `dtype`.
std::size_t ItemSize(DType dtype);
/// The dtype's name in the safetensors header ("F32", "BOOL", ...).
const char* DTypeName(DType dtype);

/// One tensor as the header describes it.
struct TensorInfo {
  DType dtype;
  std::vector<std::int64_t> shape;
  std::size_t begin = 0;  // byte offset into the data section
  std::size_t end = 0;    // one past the last byte
  std::int64_t numel() const;
};

/// A whole file in memory, validated.
class File {
 public:
  /// Largest header we accept: real headers are kilobytes; a length field of
  /// gigabytes is a corrupt or hostile file and must not become an allocation.
  static constexpr std::uint64_t kMaxHeaderBytes = 100u << 20;

  /// Reads and validates `path`. Throws FormatError.
  static File Read(const std::string& path);
  /// Validates a file already in memory; `name` is used in messages.
  static File Parse(std::vector<char> bytes, const std::string& name);

  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// The raw little-endian bytes of tensor `key`; throws if absent.
  const char* data(const std::string& key) const;
  const TensorInfo& info(const std::string& key) const;
  bool contains(const std::string& key) const { return tensors_.count(key) != 0; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::vector<char> bytes_;
  std::size_t data_start_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// A tensor to be written: dtype, shape and its little-endian bytes.
struct TensorBytes {
  DType dtype;
  std::vector<std::int64_t> shape;
  const void* data;
  std::size_t size;
};

/// Writes a safetensors file (header padded to 8 bytes, as the reference
/// implementation does). Throws std::runtime_error on I/O failure.
void Write(const std::string& path, const std::map<std::string, TensorBytes>& tensors,
           const std::map<std::string, std::string>& metadata = {});

}  // namespace detr::core::safetensors
