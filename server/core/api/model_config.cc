#include "server/core/api/model_config.h"

#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "server/core/api/json_node.h"
#include "server/core/api/model_config_parser.h"
#include "server/types/coco_classes.h"

namespace detr::core {
namespace {

using nlohmann::json;

constexpr AttentionSite kSites[] = {AttentionSite::kEncoderSelf, AttentionSite::kDecoderSelf,
                                    AttentionSite::kDecoderCross};

json AttentionToJson(const AttentionOptions& o) {
  json j = {{"type", ToString(o.type)}};
  if (o.type == AttentionType::kPooling && o.window > 0) j["window"] = o.window;
  if (o.position_projection) j["position_projection"] = true;
  if (o.query_key_projection) j["query_key_projection"] = true;
  if (o.type != AttentionType::kOptimization) return j;
  j["iterations"] = o.iterations;
  j["lambda"] = o.lambda;
  j["rho"] = o.rho;
  j["power"] = o.power;
  j["normalizer"] = ToString(o.normalizer);
  j["normalize_inputs"] = o.normalize_inputs;
  if (o.exclude_self) j["exclude_self"] = *o.exclude_self;
  j["top_k"] = o.top_k;
  j["random_tokens"] = o.random_tokens;
  j["random_seed"] = o.random_seed;
  j["random_tokens_resample"] = o.random_tokens_resample_train ? "train" : "never";
  j["query_chunk"] = o.query_chunk;
  return j;
}

void Require(bool ok, const std::string& field, const std::string& what) {
  if (!ok) throw std::invalid_argument("model config: '" + field + "' " + what);
}

}  // namespace

const char* ToString(AttentionType type) {
  switch (type) {
    case AttentionType::kSoftmax: return "softmax";
    case AttentionType::kSoftmaxIdentityQk: return "softmax_identity_qk";
    case AttentionType::kOptimization: return "optimization";
    case AttentionType::kLinear: return "linear";
    case AttentionType::kPooling: return "pooling";
  }
  return "?";
}

const char* ToString(Normalizer normalizer) {
  switch (normalizer) {
    case Normalizer::kReluPower: return "relu_power";
    case Normalizer::kAbsPower: return "abs_power";
    case Normalizer::kSoftmax: return "softmax";
  }
  return "?";
}

std::optional<AttentionSite> ParseSite(const std::string& name) {
  for (auto site : kSites) {
    if (name == ToString(site)) return site;
  }
  return std::nullopt;
}

namespace config {

AttentionType ParseAttentionType(const std::string& name, const std::string& source, const std::string& field) {
  for (auto type : {AttentionType::kSoftmax, AttentionType::kSoftmaxIdentityQk, AttentionType::kOptimization,
                    AttentionType::kLinear, AttentionType::kPooling}) {
    if (name == ToString(type)) return type;
  }
  Invalid(source, field, "is '" + name + "'; expected softmax, softmax_identity_qk, optimization, linear or pooling");
}

Normalizer ParseNormalizer(const std::string& name, const std::string& source, const std::string& field) {
  for (auto n : {Normalizer::kReluPower, Normalizer::kAbsPower, Normalizer::kSoftmax}) {
    if (name == ToString(n)) return n;
  }
  Invalid(source, field, "is '" + name + "'; expected relu_power, abs_power or softmax");
}

}  // namespace config

const char* ToString(AttentionSite site) {
  switch (site) {
    case AttentionSite::kEncoderSelf: return "encoder.self";
    case AttentionSite::kDecoderSelf: return "decoder.self";
    case AttentionSite::kDecoderCross: return "decoder.cross";
  }
  return "?";
}

bool AttentionOptions::ExcludesSelf(AttentionSite site) const {
  return exclude_self.value_or(site != AttentionSite::kDecoderCross);
}

const AttentionOptions& ModelConfig::attention(AttentionSite site) const {
  switch (site) {
    case AttentionSite::kEncoderSelf: return encoder_self;
    case AttentionSite::kDecoderSelf: return decoder_self;
    case AttentionSite::kDecoderCross: return decoder_cross;
  }
  throw std::logic_error("unknown attention site");
}

AttentionOptions& ModelConfig::attention(AttentionSite site) {
  return const_cast<AttentionOptions&>(static_cast<const ModelConfig&>(*this).attention(site));
}

ModelConfig ModelConfig::FromJson(const json& document, const std::string& source) {
  ModelConfig c;
  config::ApplyModelConfig(c, config::JsonNode(document), source);
  try {
    c.Validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source + ": " + e.what());
  }
  return c;
}

ModelConfig ModelConfig::FromJsonText(const std::string& text, const std::string& source) {
  json document;
  try {
    document = json::parse(text);
  } catch (const json::exception& e) {
    throw std::invalid_argument(source + ": not valid JSON: " + e.what());
  }
  return FromJson(document, source);
}

ModelConfig ModelConfig::FromJsonFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot open model config");
  std::stringstream text;
  text << in.rdbuf();
  return FromJsonText(text.str(), path);
}

std::string ModelConfig::ToJsonText() const {
  json j = {{"backbone", backbone},
            {"dilation", dilation},
            {"hidden_dim", hidden_dim},
            {"nheads", nheads},
            {"enc_layers", enc_layers},
            {"dec_layers", dec_layers},
            {"dim_feedforward", dim_feedforward},
            {"num_queries", num_queries},
            {"num_classes", num_classes},
            {"position_embedding", position_embedding},
            {"normalize_before", normalize_before},
            {"dropout", dropout}};
  if (!class_names.empty()) j["class_names"] = class_names;
  for (auto site : kSites) j["attention"][ToString(site)] = AttentionToJson(attention(site));
  return j.dump(2);
}

std::vector<std::string> ModelConfig::ClassNames() const {
  if (!class_names.empty()) return class_names;
  std::vector<std::string> names;
  for (int id = 0; id < num_classes; ++id)
    names.push_back(num_classes == 91 ? CocoClassName(id) : "class " + std::to_string(id));
  return names;
}

void ModelConfig::Validate() const {
  static const std::set<std::string> kBackbones = {"resnet18", "resnet34", "resnet50", "resnet101"};
  Require(kBackbones.count(backbone) != 0, "backbone", "must be resnet18, resnet34, resnet50 or resnet101");
  Require(!dilation || backbone == "resnet50" || backbone == "resnet101", "dilation",
          "(DC5) needs a bottleneck backbone (resnet50/101), as in torchvision");
  Require(hidden_dim > 0 && nheads > 0 && hidden_dim % nheads == 0, "hidden_dim",
          "must be positive and divisible by nheads");
  Require(enc_layers >= 0, "enc_layers", "must be >= 0");
  Require(dec_layers > 0, "dec_layers", "must be > 0");
  Require(dim_feedforward > 0, "dim_feedforward", "must be > 0");
  Require(dropout >= 0 && dropout < 1, "dropout", "must be in [0, 1)");
  Require(num_queries > 0, "num_queries", "must be > 0");
  Require(num_classes > 0, "num_classes", "must be > 0");
  Require(class_names.empty() || static_cast<int>(class_names.size()) == num_classes, "class_names",
          "must name every class id 0.." + std::to_string(num_classes - 1) + " (" + std::to_string(num_classes) +
              " names; use \"N/A\" for unused ids)");
  Require(position_embedding == "sine" || position_embedding == "v2", "position_embedding",
          "must be 'sine' (learned embeddings are not supported)");
  for (auto site : kSites) {
    const auto& a = attention(site);
    const std::string prefix = std::string("attention.") + ToString(site) + ".";
    Require(a.iterations >= 1, prefix + "iterations", "must be >= 1");
    Require(a.lambda >= 0, prefix + "lambda", "must be >= 0");
    Require(a.rho > 0, prefix + "rho", "must be > 0");
    Require(a.power > 0, prefix + "power", "must be > 0");
    Require(a.top_k >= 0, prefix + "top_k", "must be >= 0");
    Require(a.random_tokens >= 0, prefix + "random_tokens", "must be >= 0");
    Require(a.query_chunk >= 0, prefix + "query_chunk", "must be >= 0");
    Require(!(site == AttentionSite::kDecoderCross && a.exclude_self.value_or(false)), prefix + "exclude_self",
            "only applies to self-attention sites");
    Require(a.window >= 0 && (a.window == 0 || a.window % 2 == 1), prefix + "window", "must be 0 or an odd size");
    // Only the encoder's tokens lie on the feature map's grid.
    Require(a.window == 0 || (a.type == AttentionType::kPooling && site == AttentionSite::kEncoderSelf),
            prefix + "window", "only applies to pooling at encoder.self");
    // The other types project the whole query and key already.
    Require(
        !a.position_projection || a.type == AttentionType::kOptimization || a.type == AttentionType::kSoftmaxIdentityQk,
        prefix + "position_projection", "only applies to optimization and softmax_identity_qk");
    Require(!a.query_key_projection || a.type == AttentionType::kOptimization, prefix + "query_key_projection",
            "only applies to optimization");
  }
}

}  // namespace detr::core
