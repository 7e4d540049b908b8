// Reading configuration documents: one set of field helpers for every
// format. A Node adapts one parsed document (JsonNode: nlohmann::json, for
// model configs; the service's YamlNode: yaml-cpp, for the server's config)
// to what the parsers need:
//
//   bool IsMap() const;  bool IsString() const;  bool IsSequence() const;
//   std::vector<std::pair<std::string, Node>> Entries() const;  // a map's, in order
//   std::vector<Node> Elements() const;                         // a sequence's
//   template <typename T> std::optional<T> As() const;          // nullopt: not a T
//   std::string TypeName() const;                               // for messages
//
// Errors are std::invalid_argument("SOURCE: 'FIELD' WHAT"), naming the file
// (or other source) and the field.
#pragma once

#include <set>
#include <stdexcept>
#include <string>

namespace detr::core::config {

[[noreturn]] inline void Invalid(const std::string& source, const std::string& field, const std::string& what) {
  throw std::invalid_argument(source + ": '" + field + "' " + what);
}

/// The node's value as a T, or an error naming the field and the type found.
template <typename T, typename Node>
T Read(const Node& node, const std::string& source, const std::string& field) {
  if (auto value = node.template As<T>()) return *value;
  Invalid(source, field, "has the wrong type (" + node.TypeName() + ")");
}

/// "where.key", or "key" at the top level.
inline std::string Field(const std::string& where, const std::string& key) {
  return where.empty() ? key : where + "." + key;
}

/// A map whose keys are all in `allowed`: a misspelt setting is an error,
/// not silently ignored.
template <typename Node>
void CheckKeys(const Node& node, const std::set<std::string>& allowed, const std::string& source,
               const std::string& where) {
  if (!node.IsMap()) Invalid(source, where, "must be a map");
  for (const auto& [key, value] : node.Entries()) {
    if (!allowed.count(key)) Invalid(source, Field(where, key), "is not a known setting");
  }
}

}  // namespace detr::core::config
