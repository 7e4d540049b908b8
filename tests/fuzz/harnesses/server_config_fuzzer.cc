// Fuzzes the server config parser (YAML or JSON), including the models
// written inline in it.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "server/service/config/server_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    detr::service::ServerConfig::FromText(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml",
                                          "/nonexistent");
  } catch (const std::invalid_argument&) {
    // Refused with a message naming the file and field, as it should be.
  }
  return 0;
}
