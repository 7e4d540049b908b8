#include "server/service/server_config.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace detr {
namespace {

using nlohmann::json;

[[noreturn]] void Invalid(const std::string& source, const std::string& field, const std::string& what) {
  throw std::invalid_argument(source + ": '" + field + "' " + what);
}

template <typename T>
T Read(const YAML::Node& node, const std::string& source, const std::string& field) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    Invalid(source, field, "has the wrong type");
  }
}

// YAML -> JSON, for the model config parser (which speaks JSON).
json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& item : node) out[item.first.as<std::string>()] = ToJson(item.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) out.push_back(ToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const auto text = node.Scalar();
      if (node.Tag() == "!") return text;  // quoted: a string
      if (text == "true" || text == "false") return text == "true";
      try {
        std::size_t used = 0;
        const long long integer = std::stoll(text, &used);
        if (used == text.size()) return integer;
        const double real = std::stod(text, &used);
        if (used == text.size()) return real;
      } catch (const std::exception&) {
      }
      return text;
    }
    default:
      return nullptr;
  }
}

void CheckKeys(const YAML::Node& node, const std::set<std::string>& allowed, const std::string& source,
               const std::string& where) {
  if (!node.IsMap()) Invalid(source, where, "must be a map");
  for (const auto& item : node) {
    const auto key = item.first.as<std::string>();
    if (!allowed.count(key)) Invalid(source, where.empty() ? key : where + "." + key, "is not a known setting");
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Resolve(const std::string& path, const std::string& base_dir) {
  if (path.empty() || std::filesystem::path(path).is_absolute()) return path;
  return (std::filesystem::path(base_dir) / path).string();
}

ModelEntry ParseModel(const YAML::Node& node, const std::string& source, const std::string& base_dir, size_t index) {
  const std::string where = "models[" + std::to_string(index) + "]";
  CheckKeys(node, {"name", "model_config", "architecture", "weights", "random_seed", "attention", "preprocessing",
                   "batching"},
            source, where);
  ModelEntry model;
  if (!node["name"]) Invalid(source, where + ".name", "is required");
  model.name = Read<std::string>(node["name"], source, where + ".name");
  if (model.name.empty()) Invalid(source, where + ".name", "must not be empty");

  json architecture;
  if (node["model_config"] && node["architecture"]) Invalid(source, where, "has both model_config and architecture");
  if (node["model_config"]) {
    const auto path = Resolve(Read<std::string>(node["model_config"], source, where + ".model_config"), base_dir);
    try {
      architecture = json::parse(ReadFile(path));
    } catch (const json::exception& e) {
      throw std::invalid_argument(path + ": not valid JSON: " + e.what());
    }
  } else if (node["architecture"]) {
    architecture = ToJson(node["architecture"]);
  } else {
    Invalid(source, where, "needs model_config (a file) or architecture (inline)");
  }
  if (node["attention"]) {  // per-site override of the model config's attention
    const json attention = ToJson(node["attention"]);  // named: items() would dangle on a temporary
    for (const auto& [site, value] : attention.items()) architecture["attention"][site] = value;
  }
  model.config = ModelConfig::FromJsonText(architecture.dump(), source + " " + where);
  if (node["weights"]) model.weights = Resolve(Read<std::string>(node["weights"], source, where + ".weights"), base_dir);
  if (node["random_seed"]) model.random_seed = Read<std::uint64_t>(node["random_seed"], source, where + ".random_seed");

  if (const auto& p = node["preprocessing"]) {
    CheckKeys(p, {"shortest_edge", "longest_edge", "canvas"}, source, where + ".preprocessing");
    if (p["shortest_edge"]) model.preprocessing.shortest_edge = Read<int>(p["shortest_edge"], source, where + ".preprocessing.shortest_edge");
    if (p["longest_edge"]) model.preprocessing.longest_edge = Read<int>(p["longest_edge"], source, where + ".preprocessing.longest_edge");
    if (p["canvas"]) {
      const auto canvas = Read<std::vector<int>>(p["canvas"], source, where + ".preprocessing.canvas");
      if (canvas.size() != 2 || canvas[0] <= 0 || canvas[1] <= 0) {
        Invalid(source, where + ".preprocessing.canvas", "must be [height, width], both positive");
      }
      model.preprocessing.canvas_height = canvas[0];
      model.preprocessing.canvas_width = canvas[1];
    }
  }
  if (const auto& b = node["batching"]) {
    const std::string w = where + ".batching";
    CheckKeys(b, {"max_batch_size", "max_queue_delay_ms", "queue_capacity", "workers"}, source, w);
    auto& batching = model.batching;
    if (b["max_batch_size"]) batching.max_batch_size = Read<int>(b["max_batch_size"], source, w + ".max_batch_size");
    if (b["max_queue_delay_ms"]) {
      batching.max_queue_delay = std::chrono::microseconds(
          static_cast<int64_t>(Read<double>(b["max_queue_delay_ms"], source, w + ".max_queue_delay_ms") * 1000));
    }
    if (b["queue_capacity"]) batching.queue_capacity = Read<int>(b["queue_capacity"], source, w + ".queue_capacity");
    if (b["workers"]) batching.workers = Read<int>(b["workers"], source, w + ".workers");
    if (batching.max_batch_size < 1) Invalid(source, w + ".max_batch_size", "must be >= 1");
    if (batching.queue_capacity < 1) Invalid(source, w + ".queue_capacity", "must be >= 1");
    if (batching.workers < 1) Invalid(source, w + ".workers", "must be >= 1");
    if (batching.max_queue_delay.count() < 0) Invalid(source, w + ".max_queue_delay_ms", "must be >= 0");
  }
  return model;
}

ExperimentEntry ParseExperiment(const YAML::Node& node, const std::string& source, const ServerConfig& config,
                                size_t index) {
  const std::string where = "experiments[" + std::to_string(index) + "]";
  CheckKeys(node, {"name", "kind", "arms", "primary"}, source, where);
  ExperimentEntry experiment;
  experiment.name = node["name"] ? Read<std::string>(node["name"], source, where + ".name") : "";
  if (experiment.name.empty()) Invalid(source, where + ".name", "is required");
  const auto kind = node["kind"] ? Read<std::string>(node["kind"], source, where + ".kind") : "split";
  if (kind == "split") experiment.kind = ExperimentKind::kSplit;
  else if (kind == "sticky") experiment.kind = ExperimentKind::kSticky;
  else if (kind == "shadow") experiment.kind = ExperimentKind::kShadow;
  else Invalid(source, where + ".kind", "is '" + kind + "'; expected split, sticky or shadow");
  if (!node["arms"] || !node["arms"].IsSequence()) Invalid(source, where + ".arms", "must be a list");
  for (size_t i = 0; i < node["arms"].size(); ++i) {
    const auto& arm = node["arms"][i];
    const std::string w = where + ".arms[" + std::to_string(i) + "]";
    CheckKeys(arm, {"model", "weight"}, source, w);
    ExperimentArm entry{arm["model"] ? Read<std::string>(arm["model"], source, w + ".model") : "",
                        arm["weight"] ? Read<double>(arm["weight"], source, w + ".weight") : 1.0};
    if (!config.FindModel(entry.model)) Invalid(source, w + ".model", "names no model ('" + entry.model + "')");
    if (!(entry.weight >= 0)) Invalid(source, w + ".weight", "must be >= 0");
    experiment.arms.push_back(entry);
  }
  if (experiment.arms.size() < 2) Invalid(source, where + ".arms", "needs at least two arms");
  if (experiment.kind == ExperimentKind::kShadow) {
    if (experiment.arms.size() != 2) Invalid(source, where + ".arms", "a shadow experiment has exactly two arms");
    experiment.primary = node["primary"] ? Read<std::string>(node["primary"], source, where + ".primary")
                                         : experiment.arms[0].model;
    if (experiment.primary != experiment.arms[0].model && experiment.primary != experiment.arms[1].model) {
      Invalid(source, where + ".primary", "must be one of the two arms");
    }
  } else {
    double total = 0;
    for (const auto& arm : experiment.arms) total += arm.weight;
    if (!(total > 0)) Invalid(source, where + ".arms", "weights must not all be 0");
  }
  return experiment;
}

}  // namespace

const char* ToString(ExperimentKind kind) {
  switch (kind) {
    case ExperimentKind::kSplit: return "split";
    case ExperimentKind::kSticky: return "sticky";
    case ExperimentKind::kShadow: return "shadow";
  }
  return "?";
}

const ModelEntry* ServerConfig::FindModel(const std::string& name) const {
  for (const auto& model : models) {
    if (model.name == name) return &model;
  }
  return nullptr;
}

const ExperimentEntry* ServerConfig::FindExperiment(const std::string& name) const {
  for (const auto& experiment : experiments) {
    if (experiment.name == name) return &experiment;
  }
  return nullptr;
}

ServerConfig ServerConfig::FromText(const std::string& text, const std::string& source, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(source + ": not valid YAML/JSON: " + e.what());
  }
  CheckKeys(root, {"listen", "metrics_listen", "intra_op_threads", "preprocess_threads", "log_format",
                   "drain_timeout_seconds", "limits", "default_route", "models", "experiments"},
            source, "");
  ServerConfig config;
  if (root["listen"]) config.listen = Read<std::string>(root["listen"], source, "listen");
  if (root["metrics_listen"]) config.metrics_listen = Read<std::string>(root["metrics_listen"], source, "metrics_listen");
  if (root["intra_op_threads"]) config.intra_op_threads = Read<int>(root["intra_op_threads"], source, "intra_op_threads");
  if (root["preprocess_threads"]) config.preprocess_threads = Read<int>(root["preprocess_threads"], source, "preprocess_threads");
  if (root["log_format"]) {
    const auto format = Read<std::string>(root["log_format"], source, "log_format");
    if (format != "text" && format != "json") Invalid(source, "log_format", "must be text or json");
    config.json_logs = format == "json";
  }
  if (root["drain_timeout_seconds"]) {
    config.drain_timeout = std::chrono::milliseconds(
        static_cast<int64_t>(Read<double>(root["drain_timeout_seconds"], source, "drain_timeout_seconds") * 1000));
  }
  if (const auto& limits = root["limits"]) {
    CheckKeys(limits, {"max_message_bytes", "max_pixels"}, source, "limits");
    if (limits["max_message_bytes"]) config.max_message_bytes = Read<int64_t>(limits["max_message_bytes"], source, "limits.max_message_bytes");
    if (limits["max_pixels"]) config.max_pixels = Read<int64_t>(limits["max_pixels"], source, "limits.max_pixels");
  }
  if (!root["models"] || !root["models"].IsSequence() || root["models"].size() == 0) {
    Invalid(source, "models", "must list at least one model");
  }
  for (size_t i = 0; i < root["models"].size(); ++i) {
    auto model = ParseModel(root["models"][i], source, base_dir, i);
    if (config.FindModel(model.name)) Invalid(source, "models[" + std::to_string(i) + "].name", "repeats '" + model.name + "'");
    config.models.push_back(std::move(model));
  }
  if (const auto& experiments = root["experiments"]) {
    if (!experiments.IsSequence()) Invalid(source, "experiments", "must be a list");
    for (size_t i = 0; i < experiments.size(); ++i) {
      auto experiment = ParseExperiment(experiments[i], source, config, i);
      if (config.FindModel(experiment.name) || config.FindExperiment(experiment.name)) {
        Invalid(source, "experiments[" + std::to_string(i) + "].name", "repeats the name '" + experiment.name + "'");
      }
      config.experiments.push_back(std::move(experiment));
    }
  }
  if (root["default_route"]) {
    config.default_route = Read<std::string>(root["default_route"], source, "default_route");
    if (!config.FindModel(config.default_route) && !config.FindExperiment(config.default_route)) {
      Invalid(source, "default_route", "names no model or experiment ('" + config.default_route + "')");
    }
  }
  return config;
}

ServerConfig ServerConfig::FromFile(const std::string& path) {
  return FromText(ReadFile(path), path, std::filesystem::path(path).parent_path().string());
}

}  // namespace detr
