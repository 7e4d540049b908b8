// core/api/config_node.h's Node over yaml-cpp: the server's config file (YAML,
// which also reads JSON) with the same field helpers as model config files.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace detr::service {

class YamlNode {
 public:
  explicit YamlNode(YAML::Node node) : node_(std::move(node)) {}

  bool IsMap() const { return node_.IsMap(); }
  bool IsString() const { return node_.IsScalar(); }
  bool IsSequence() const { return node_.IsSequence(); }
  bool IsDefined() const { return node_.IsDefined() && !node_.IsNull(); }
  std::string TypeName() const {
    return node_.IsMap() ? "map" : node_.IsSequence() ? "list" : node_.IsScalar() ? "scalar" : "null";
  }

  std::vector<std::pair<std::string, YamlNode>> Entries() const {
    std::vector<std::pair<std::string, YamlNode>> entries;
    if (IsMap()) {
      // A key may be a list or a map in YAML ("? [a]: b"); it then names no
      // field, and CheckKeys reports it.
      for (const auto& item : node_) {
        entries.emplace_back(item.first.IsScalar() ? item.first.Scalar() : "(a key that is not a scalar)",
                             YamlNode(item.second));
      }
    }
    return entries;
  }
  std::vector<YamlNode> Elements() const {
    std::vector<YamlNode> elements;
    if (IsSequence()) {
      for (const auto& item : node_) elements.emplace_back(item);
    }
    return elements;
  }
  /// The entry `key` of a map (undefined when absent).
  YamlNode operator[](const std::string& key) const {
    if (!IsMap()) return YamlNode(YAML::Node());
    // yaml-cpp answers a const lookup of an absent key with an invalid node
    // whose every query throws YAML::InvalidNode (found by the config
    // fuzzer: a config without `models` failed with yaml-cpp's message).
    const YAML::Node child = node_[key];
    return YamlNode(child.IsDefined() ? child : YAML::Node());
  }

  template <typename T>
  std::optional<T> As() const {
    try {
      return node_.as<T>();
    } catch (const YAML::Exception&) {
      return std::nullopt;
    }
  }

 private:
  YAML::Node node_;
};

}  // namespace detr::service
