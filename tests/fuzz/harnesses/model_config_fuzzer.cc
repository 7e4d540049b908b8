// Fuzzes the model config parser (JSON, the official argument names).
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "server/core/api/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto config =
        detr::core::ModelConfig::FromJsonText(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
    detr::core::ModelConfig::FromJsonText(config.ToJsonText(), "round trip");  // what it writes it reads back
    config.ClassNames();
  } catch (const std::invalid_argument&) {
    // Refused with a message naming the field, as it should be.
  }
  return 0;
}
