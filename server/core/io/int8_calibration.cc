#include "server/core/io/int8_calibration.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace detr::core {
namespace {

constexpr const char* kFormat = "detr-serve int8 calibration";
constexpr int kVersion = 1;

[[noreturn]] void Fail(const std::string& path, const std::string& problem) {
  throw CalibrationError("int8 calibration " + path + ": " + problem +
                         " (write one with detr-calibrate; docs/int8.md)");
}

const nlohmann::json& Field(const nlohmann::json& json, const char* name, nlohmann::json::value_t type,
                            const std::string& path) {
  const auto it = json.find(name);
  if (it == json.end()) Fail(path, std::string("no \"") + name + "\" field");
  const bool number = type == nlohmann::json::value_t::number_float;
  if (number ? !it->is_number() : it->type() != type) {
    Fail(path, std::string("\"") + name + "\" is a " + it->type_name());
  }
  return *it;
}

}  // namespace

Int8Calibration ReadInt8Calibration(const std::string& path) {
  std::ifstream in(path);
  if (!in) Fail(path, "cannot be read");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    Fail(path, std::string("is not JSON (truncated?): ") + e.what());
  }
  using Type = nlohmann::json::value_t;
  if (!json.is_object() || json.value("format", "") != kFormat) Fail(path, "is not an int8 calibration file");
  if (json.value("version", 0) != kVersion) Fail(path, "has an unknown version (this build reads version 1)");
  Int8Calibration calibration;
  calibration.weights_fingerprint = Field(json, "weights_fingerprint", Type::string, path).get<std::string>();
  calibration.method = Field(json, "method", Type::string, path).get<std::string>();
  if (calibration.method != "max-abs") Fail(path, "has an unknown method \"" + calibration.method + "\"");
  calibration.images = Field(json, "images", Type::number_float, path).get<int>();
  calibration.source = json.value("source", "");
  const auto& ranges = Field(json, "ranges", Type::object, path);
  if (ranges.empty()) Fail(path, "has no ranges");
  for (const auto& [name, value] : ranges.items()) {
    const double range = value.is_number() ? value.get<double>() : NAN;
    if (!std::isfinite(range) || range <= 0) Fail(path, "range of \"" + name + "\" is not a number > 0");
    calibration.ranges[name] = static_cast<float>(range);
  }
  return calibration;
}

void WriteInt8Calibration(const std::string& path, const Int8Calibration& calibration) {
  nlohmann::ordered_json json = {{"format", kFormat},
                                 {"version", kVersion},
                                 {"weights_fingerprint", calibration.weights_fingerprint},
                                 {"method", calibration.method},
                                 {"images", calibration.images},
                                 {"source", calibration.source}};
  json["ranges"] = calibration.ranges;
  const std::string partial = path + ".partial";
  {
    std::ofstream out(partial, std::ios::trunc);
    out << json.dump(2) << "\n";
    if (!out) Fail(partial, "cannot be written");
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) Fail(path, "cannot be written");
}

}  // namespace detr::core
