// config_node.h's Node over nlohmann::json (model config files).
#pragma once

#include <optional>
#include <string>
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
    try {
      return value_->get<T>();
    } catch (const nlohmann::json::exception&) {
      return std::nullopt;
    }
  }

 private:
  const nlohmann::json* value_;
};

}  // namespace detr::core::config
