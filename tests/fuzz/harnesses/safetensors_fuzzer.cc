// Fuzzes the safetensors parser: a weights file is untrusted bytes.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "server/core/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = detr::core::safetensors::File::Parse(std::vector<char>(data, data + size), "fuzz.safetensors");
    // Every tensor's bytes, read as a loader reads them.
    std::size_t sum = 0;
    for (const auto& [key, info] : file.tensors()) {
      const char* bytes = file.data(key);
      for (std::size_t i = 0; i < info.end - info.begin; ++i) sum += static_cast<unsigned char>(bytes[i]);
    }
    // Keeps the reads from being optimised away.
    static volatile std::size_t sink;
    sink = sum;
    (void)sink;
  } catch (const detr::core::safetensors::FormatError&) {
    // Refused with a message naming the problem, as it should be.
  }
  return 0;
}
