#include "server/core/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <utility>

#include <nlohmann/json.hpp>

namespace detr::core::safetensors {
namespace {

using nlohmann::json;

struct DTypeEntry {
  DType dtype;
  const char* name;
  std::size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},   {DType::kI8, "I8", 1},   {DType::kI16, "I16", 2},
    {DType::kI32, "I32", 4},   {DType::kI64, "I64", 8}, {DType::kF16, "F16", 2}, {DType::kBF16, "BF16", 2},
    {DType::kF32, "F32", 4},   {DType::kF64, "F64", 8},
};

[[noreturn]] void Fail(const std::string& file, const std::string& what) { throw FormatError(file + ": " + what); }

[[noreturn]] void FailKey(const std::string& file, const std::string& key, const std::string& what) {
  Fail(file, "tensor '" + key + "': " + what);
}

DType ParseDType(const std::string& file, const std::string& key, const json& value) {
  if (!value.is_string()) FailKey(file, key, "dtype is not a string");
  const auto name = value.get<std::string>();
  for (const auto& entry : kDTypes) {
    if (name == entry.name) return entry.dtype;
  }
  FailKey(file, key, "unsupported dtype '" + name + "'");
}

std::vector<std::int64_t> ParseShape(const std::string& file, const std::string& key, const json& value) {
  if (!value.is_array()) FailKey(file, key, "shape is not an array");
  std::vector<std::int64_t> shape;
  for (const auto& dim : value) {
    if (!dim.is_number_unsigned()) FailKey(file, key, "shape has a dimension that is not a non-negative integer");
    const auto size = dim.get<std::uint64_t>();
    if (size > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      FailKey(file, key, "shape dimension too large");
    }
    shape.push_back(static_cast<std::int64_t>(size));
  }
  return shape;
}

// Bytes the tensor must occupy, or a FormatError if that overflows.
std::size_t ExpectedBytes(const std::string& file, const std::string& key, const TensorInfo& info) {
  std::uint64_t bytes = ItemSize(info.dtype);
  for (auto dim : info.shape) {
    const auto d = static_cast<std::uint64_t>(dim);
    if (d != 0 && bytes > std::numeric_limits<std::uint64_t>::max() / d) {
      FailKey(file, key, "shape overflows the addressable size");
    }
    bytes *= d;
  }
  return static_cast<std::size_t>(bytes);
}

TensorInfo ParseTensor(const std::string& file, const std::string& key, const json& value, std::size_t data_size) {
  if (!value.is_object()) FailKey(file, key, "header entry is not an object");
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(field)) FailKey(file, key, std::string("header entry lacks '") + field + "'");
  }
  TensorInfo info;
  info.dtype = ParseDType(file, key, value["dtype"]);
  info.shape = ParseShape(file, key, value["shape"]);
  const auto& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    FailKey(file, key, "data_offsets must be two non-negative integers");
  }
  const auto begin = offsets[0].get<std::uint64_t>();
  const auto end = offsets[1].get<std::uint64_t>();
  if (begin > end) FailKey(file, key, "data_offsets begin after they end");
  if (end > data_size) {
    FailKey(file, key,
            "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + ") run past the data section (" +
                std::to_string(data_size) + " bytes): the file is truncated or its header lies");
  }
  info.begin = static_cast<std::size_t>(begin);
  info.end = static_cast<std::size_t>(end);
  const auto expected = ExpectedBytes(file, key, info);
  if (info.end - info.begin != expected) {
    FailKey(file, key,
            "holds " + std::to_string(info.end - info.begin) + " bytes but its dtype " + DTypeName(info.dtype) +
                " and shape need " + std::to_string(expected));
  }
  return info;
}

void CheckNoOverlap(const std::string& file, const std::map<std::string, TensorInfo>& tensors) {
  std::vector<std::pair<const std::string*, const TensorInfo*>> sorted;
  for (const auto& [key, info] : tensors) sorted.emplace_back(&key, &info);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
  for (std::size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i].second->begin < sorted[i - 1].second->end) {
      Fail(file, "tensors '" + *sorted[i - 1].first + "' and '" + *sorted[i].first + "' overlap in the data section");
    }
  }
}

std::uint64_t ReadLittleEndian64(const char* p) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(p[i]);
  return value;
}

}  // namespace

std::size_t ItemSize(DType dtype) {
  for (const auto& entry : kDTypes) {
    if (entry.dtype == dtype) return entry.size;
  }
  return 0;
}

const char* DTypeName(DType dtype) {
  for (const auto& entry : kDTypes) {
    if (entry.dtype == dtype) return entry.name;
  }
  return "?";
}

std::int64_t TensorInfo::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

File File::Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw FormatError(path + ": cannot open file");
  const auto size = static_cast<std::uint64_t>(in.tellg());
  if (size < 8) Fail(path, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  in.seekg(0);
  char length_bytes[8];
  in.read(length_bytes, 8);
  const auto header_length = ReadLittleEndian64(length_bytes);
  // Check the claimed sizes before allocating anything for them.
  if (header_length > kMaxHeaderBytes) {
    Fail(path, "header length " + std::to_string(header_length) + " exceeds the limit of " +
                   std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (header_length > size - 8) {
    Fail(path, "header length " + std::to_string(header_length) + " runs past the end of the " + std::to_string(size) +
                   "-byte file");
  }
  std::vector<char> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) Fail(path, "read failed");
  return Parse(std::move(bytes), path);
}

File File::Parse(std::vector<char> bytes, const std::string& name) {
  File file;
  file.name_ = name;
  if (bytes.size() < 8) Fail(name, "shorter than the 8-byte header length");
  const auto header_length = ReadLittleEndian64(bytes.data());
  if (header_length > kMaxHeaderBytes) {
    Fail(name, "header length " + std::to_string(header_length) + " exceeds the limit of " +
                   std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (header_length > bytes.size() - 8) {
    Fail(name, "header length " + std::to_string(header_length) + " runs past the end of the " +
                   std::to_string(bytes.size()) + "-byte file");
  }
  file.data_start_ = 8 + static_cast<std::size_t>(header_length);
  const std::size_t data_size = bytes.size() - file.data_start_;

  json header;
  try {
    header = json::parse(bytes.begin() + 8, bytes.begin() + static_cast<std::ptrdiff_t>(file.data_start_));
  } catch (const json::exception& e) {
    Fail(name, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) Fail(name, "header is not a JSON object");

  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) Fail(name, "__metadata__ is not an object");
      for (const auto& [mkey, mvalue] : value.items()) {
        if (!mvalue.is_string()) Fail(name, "__metadata__ value '" + mkey + "' is not a string");
        file.metadata_[mkey] = mvalue.get<std::string>();
      }
      continue;
    }
    file.tensors_[key] = ParseTensor(name, key, value, data_size);
  }
  CheckNoOverlap(name, file.tensors_);
  file.bytes_ = std::move(bytes);
  return file;
}

const TensorInfo& File::info(const std::string& key) const {
  const auto it = tensors_.find(key);
  if (it == tensors_.end()) Fail(name_, "no tensor '" + key + "'");
  return it->second;
}

const char* File::data(const std::string& key) const { return bytes_.data() + data_start_ + info(key).begin; }

void Write(const std::string& path, const std::map<std::string, TensorBytes>& tensors,
           const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t offset = 0;
  for (const auto& [key, tensor] : tensors) {
    header[key] = {
        {"dtype", DTypeName(tensor.dtype)}, {"shape", tensor.shape}, {"data_offsets", {offset, offset + tensor.size}}};
    offset += tensor.size;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data section starts 8-aligned

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(path + ": cannot open for writing");
  char length_bytes[8];
  std::uint64_t length = text.size();
  for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  out.write(length_bytes, 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& [key, tensor] : tensors) {
    out.write(static_cast<const char*>(tensor.data), static_cast<std::streamsize>(tensor.size));
  }
  if (!out) throw std::runtime_error(path + ": write failed");
}

}  // namespace detr::core::safetensors
