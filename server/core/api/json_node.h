// config_node.h's Node over nlohmann::json (model config files).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace detr::core::config {

class JsonNode {
 public:
  explicit JsonNode(const nlohmann::json& value) : value_(&value) {}

  bool IsMap() const { return value_->is_object(); }
  bool IsString() const { return value_->is_string(); }
  bool IsSequence() const { return value_->is_array(); }
  std::string TypeName() const { return value_->type_name(); }

  std::vector<std::pair<std::string, JsonNode>> Entries() const {
    std::vector<std::pair<std::string, JsonNode>> entries;
    if (IsMap()) {
      for (auto it = value_->begin(); it != value_->end(); ++it) entries.emplace_back(it.key(), JsonNode(it.value()));
    }
    return entries;
  }
  std::vector<JsonNode> Elements() const {
    std::vector<JsonNode> elements;
    if (IsSequence()) {
      for (const auto& element : *value_) elements.emplace_back(element);
    }
    return elements;
  }

  template <typename T>
  std::optional<T> As() const {
    if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
      return Number<T>();
    } else {
      try {
        return value_->get<T>();
      } catch (const nlohmann::json::exception&) {
        return std::nullopt;
      }
    }
  }

 private:
  // nlohmann's get<int>() of 1e92 is a cast out of range, undefined
  // behaviour (found by the model config fuzzer): numbers are range-checked
  // here, and an integer field takes a float only when it is whole (6.0).
  template <typename T>
  std::optional<T> Number() const {
    if (!value_->is_number()) return std::nullopt;
    if (value_->is_number_float()) {
      const double v = value_->get<double>();
      if (!std::isfinite(v)) return std::nullopt;
      if constexpr (std::is_integral_v<T>) {
        // Whole, and within +-2^53 where a double holds integers exactly.
        if (v != std::trunc(v) || std::fabs(v) > 9007199254740992.0) return std::nullopt;
        return IntegerIn<T>(static_cast<std::int64_t>(v));
      } else {
        if (std::fabs(v) > static_cast<double>(std::numeric_limits<T>::max())) return std::nullopt;
        return static_cast<T>(v);
      }
    }
    if (value_->is_number_unsigned()) {
      const auto v = value_->get<std::uint64_t>();
      if (std::is_integral_v<T> && v > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return std::nullopt;
      return static_cast<T>(v);
    }
    const auto v = value_->get<std::int64_t>();
    if constexpr (std::is_integral_v<T>) {
      return IntegerIn<T>(v);
    } else {
      return static_cast<T>(v);
    }
  }

  template <typename T>
  static std::optional<T> IntegerIn(std::int64_t v) {
    if constexpr (std::is_signed_v<T>) {
      if (v < std::numeric_limits<T>::lowest() || v > std::numeric_limits<T>::max()) return std::nullopt;
    } else {
      if (v < 0 || static_cast<std::uint64_t>(v) > std::numeric_limits<T>::max()) return std::nullopt;
    }
    return static_cast<T>(v);
  }

  const nlohmann::json* value_;
};

}  // namespace detr::core::config
