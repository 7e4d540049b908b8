// The fields of a model config, read from any document format
// (config_node.h): ModelConfig::FromJson reads JSON files with it, and the
// server's config reads models written inline in its YAML with it, so both
// accept exactly the same keys, types and values.
#pragma once

#include <string>

#include "server/core/api/config_node.h"
#include "server/core/api/model_config.h"

namespace detr::core::config {

AttentionType ParseAttentionType(const std::string& name, const std::string& source, const std::string& field);
Normalizer ParseNormalizer(const std::string& name, const std::string& source, const std::string& field);

/// One site's attention: a type name ("optimization") or an object of options.
template <typename Node>
AttentionOptions ParseAttention(const Node& node, const std::string& source, const std::string& site) {
  AttentionOptions options;
  if (node.IsString()) {  // shorthand: "decoder.cross": "optimization"
    options.type = ParseAttentionType(Read<std::string>(node, source, site), source, site);
    return options;
  }
  if (!node.IsMap()) Invalid(source, site, "must be a type name or an object");
  for (const auto& [key, value] : node.Entries()) {
    const std::string field = site + "." + key;
    if (key == "type") options.type = ParseAttentionType(Read<std::string>(value, source, field), source, field);
    else if (key == "iterations") options.iterations = Read<int>(value, source, field);
    else if (key == "lambda") options.lambda = Read<double>(value, source, field);
    else if (key == "rho") options.rho = Read<double>(value, source, field);
    else if (key == "power") options.power = Read<double>(value, source, field);
    else if (key == "normalizer")
      options.normalizer = ParseNormalizer(Read<std::string>(value, source, field), source, field);
    else if (key == "normalize_inputs") options.normalize_inputs = Read<bool>(value, source, field);
    else if (key == "exclude_self") options.exclude_self = Read<bool>(value, source, field);
    else if (key == "top_k") options.top_k = Read<int>(value, source, field);
    else if (key == "random_tokens") options.random_tokens = Read<int>(value, source, field);
    else if (key == "random_seed") options.random_seed = Read<std::uint64_t>(value, source, field);
    else if (key == "random_tokens_resample") {
      const auto when = Read<std::string>(value, source, field);
      if (when != "train" && when != "never") Invalid(source, field, "is '" + when + "'; expected train or never");
      options.random_tokens_resample_train = when == "train";
    } else if (key == "query_chunk") options.query_chunk = Read<int>(value, source, field);
    else if (key == "window") options.window = Read<int>(value, source, field);
    else if (key == "position_projection") options.position_projection = Read<bool>(value, source, field);
    else if (key == "query_key_projection") options.query_key_projection = Read<bool>(value, source, field);
    else Invalid(source, field, "is not an attention option");
  }
  return options;
}

/// `attention`: a map from site name to ParseAttention's input; each site it
/// names replaces that site of `config`.
template <typename Node>
void ApplyAttention(ModelConfig& config, const Node& node, const std::string& source, const std::string& where) {
  if (!node.IsMap()) Invalid(source, where, "must be a map keyed by site");
  for (const auto& [site_name, value] : node.Entries()) {
    const auto site = ParseSite(site_name);
    if (!site) Invalid(source, Field(where, site_name), "is not a site (encoder.self, decoder.self, decoder.cross)");
    config.attention(*site) = ParseAttention(value, source, Field(where, site_name));
  }
}

/// Every key of a model config map (the official main.py argument names plus
/// class_names and attention), applied to `config`; does not validate.
template <typename Node>
void ApplyModelConfig(ModelConfig& c, const Node& node, const std::string& source) {
  if (!node.IsMap()) throw std::invalid_argument(source + ": a model config must be a map of settings");
  for (const auto& [key, value] : node.Entries()) {
    if (key == "backbone") c.backbone = Read<std::string>(value, source, key);
    else if (key == "dilation") c.dilation = Read<bool>(value, source, key);
    else if (key == "hidden_dim") c.hidden_dim = Read<int>(value, source, key);
    else if (key == "nheads") c.nheads = Read<int>(value, source, key);
    else if (key == "enc_layers") c.enc_layers = Read<int>(value, source, key);
    else if (key == "dec_layers") c.dec_layers = Read<int>(value, source, key);
    else if (key == "dim_feedforward") c.dim_feedforward = Read<int>(value, source, key);
    else if (key == "num_queries") c.num_queries = Read<int>(value, source, key);
    else if (key == "num_classes") c.num_classes = Read<int>(value, source, key);
    else if (key == "position_embedding") c.position_embedding = Read<std::string>(value, source, key);
    else if (key == "normalize_before") c.normalize_before = Read<bool>(value, source, key);
    else if (key == "dropout") c.dropout = Read<double>(value, source, key);
    else if (key == "class_names") c.class_names = Read<std::vector<std::string>>(value, source, key);
    else if (key == "seed") continue;  // the fixture records its weight seed; no effect on the architecture
    else if (key == "attention") ApplyAttention(c, value, source, "attention");
    else Invalid(source, key, "is not a model config key");
  }
}

}  // namespace detr::core::config
