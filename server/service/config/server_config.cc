#include "server/service/config/server_config.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "server/core/api/config_node.h"
#include "server/core/api/model_config_parser.h"
#include "server/service/config/yaml_node.h"

namespace detr::service {
namespace {

namespace fs = std::filesystem;
using core::config::CheckKeys;
using core::config::Field;
using core::config::Invalid;
using core::config::Read;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Resolve(const std::string& path, const std::string& base_dir) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(base_dir) / path).string();
}

// Size and modification time: a reload notices weights replaced in place.
std::string FileVersion(const std::string& path) {
  std::error_code error;
  const auto size = fs::file_size(path, error);
  if (error) return "";
  const auto time = fs::last_write_time(path, error);
  return std::to_string(size) + "@" + std::to_string(time.time_since_epoch().count());
}

// `key`'s value when present, read as a T.
template <typename T>
void ReadIf(const YamlNode& map, const std::string& key, T& out, const std::string& source, const std::string& where) {
  const auto node = map[key];
  if (node.IsDefined()) out = Read<T>(node, source, Field(where, key));
}

core::ModelConfig Architecture(const YamlNode& node, const std::string& source, const std::string& base_dir,
                               const std::string& where) {
  const auto file = node["model_config"], inline_config = node["architecture"];
  if (file.IsDefined() && inline_config.IsDefined()) Invalid(source, where, "has both model_config and architecture");
  core::ModelConfig config;
  if (file.IsDefined()) {
    const auto path = Resolve(Read<std::string>(file, source, where + ".model_config"), base_dir);
    nlohmann::json document;
    try {
      document = nlohmann::json::parse(ReadFile(path));
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(path + ": not valid JSON: " + e.what());
    }
    config = core::ModelConfig::FromJson(document, path);
  } else if (inline_config.IsDefined()) {
    core::config::ApplyModelConfig(config, inline_config, source + " " + where + ".architecture");
  } else {
    Invalid(source, where, "needs model_config (a file) or architecture (inline)");
  }
  // Per-site attention overrides of the architecture.
  if (const auto attention = node["attention"]; attention.IsDefined()) {
    core::config::ApplyAttention(config, attention, source, where + ".attention");
  }
  try {
    config.Validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source + " " + where + ": " + e.what());
  }
  return config;
}

// Each canvas's plans (one per batch chunk) hold the backbone's weights
// reordered for its shape: a handful of canvases is what padding is for.
constexpr std::size_t kMaxCanvases = 16;
// A canvas larger than any resize rule of DETR's (1333 px) by far: plans and
// activations of larger inputs run into gigabytes.
constexpr int kMaxCanvasSide = 4096;

image::Canvas ParseCanvas(const YamlNode& node, const std::string& source, const std::string& where) {
  const auto sides = Read<std::vector<int>>(node, source, where);
  if (sides.size() != 2 || sides[0] <= 0 || sides[1] <= 0 || sides[0] > kMaxCanvasSide || sides[1] > kMaxCanvasSide) {
    Invalid(source, where, "must be [height, width], both from 1 to " + std::to_string(kMaxCanvasSide));
  }
  return {sides[0], sides[1]};
}

PreprocessingConfig ParsePreprocessing(const YamlNode& p, const std::string& source, const std::string& where) {
  CheckKeys(p, {"shortest_edge", "longest_edge", "canvas", "canvases"}, source, where);
  PreprocessingConfig preprocessing;
  ReadIf(p, "shortest_edge", preprocessing.shortest_edge, source, where);
  ReadIf(p, "longest_edge", preprocessing.longest_edge, source, where);
  if (const auto canvas_node = p["canvas"]; canvas_node.IsDefined()) {
    const auto canvas = ParseCanvas(canvas_node, source, where + ".canvas");
    preprocessing.canvas_height = canvas.height;
    preprocessing.canvas_width = canvas.width;
  }
  if (const auto canvases = p["canvases"]; canvases.IsDefined()) {
    if (preprocessing.fixed_canvas()) Invalid(source, where, "has both canvas and canvases; choose one");
    const auto elements = canvases.Elements();
    if (!canvases.IsSequence() || elements.empty() || elements.size() > kMaxCanvases) {
      Invalid(source, where + ".canvases",
              "must be a list of 1 to " + std::to_string(kMaxCanvases) + " [height, width] pairs");
    }
    for (std::size_t i = 0; i < elements.size(); ++i) {
      preprocessing.canvases.push_back(
          ParseCanvas(elements[i], source, where + ".canvases[" + std::to_string(i) + "]"));
    }
    const image::ResizePolicy policy{preprocessing.shortest_edge, preprocessing.longest_edge};
    if (const auto miss = image::CanvasesMissFor(policy, preprocessing.canvases)) {
      Invalid(source, where + ".canvases", *miss);
    }
  }
  return preprocessing;
}

BatchingConfig ParseBatching(const YamlNode& b, const std::string& source, const std::string& where) {
  CheckKeys(b, {"max_batch_size", "max_queue_delay_ms", "queue_capacity", "workers"}, source, where);
  BatchingConfig batching;
  ReadIf(b, "max_batch_size", batching.max_batch_size, source, where);
  double delay_ms = static_cast<double>(batching.max_queue_delay.count()) / 1000;
  ReadIf(b, "max_queue_delay_ms", delay_ms, source, where);
  batching.max_queue_delay = std::chrono::microseconds(static_cast<int64_t>(delay_ms * 1000));
  ReadIf(b, "queue_capacity", batching.queue_capacity, source, where);
  ReadIf(b, "workers", batching.workers, source, where);
  if (batching.max_batch_size < 1) Invalid(source, where + ".max_batch_size", "must be >= 1");
  if (batching.queue_capacity < 1) Invalid(source, where + ".queue_capacity", "must be >= 1");
  if (batching.workers < 1) Invalid(source, where + ".workers", "must be >= 1");
  if (!(delay_ms >= 0)) Invalid(source, where + ".max_queue_delay_ms", "must be >= 0");
  return batching;
}

// precision and calibration: an int8 model names its calibration, or has
// one beside its weights.
void ReadPrecision(const YamlNode& node, const std::string& source, const std::string& base_dir,
                   const std::string& where, ModelEntry& model) {
  ReadIf(node, "precision", model.precision, source, where);
  if (model.precision != "float32" && model.precision != "int8") {
    Invalid(source, where + ".precision", "is '" + model.precision + "'; expected float32 or int8");
  }
  if (node["calibration"].IsDefined()) {
    if (model.precision != "int8") Invalid(source, where + ".calibration", "is for precision: int8 only");
    model.calibration = Resolve(Read<std::string>(node["calibration"], source, where + ".calibration"), base_dir);
  } else if (model.precision == "int8") {
    if (model.weights.empty()) {
      Invalid(source, where + ".calibration", "is required for int8 without a weights file (detr-calibrate writes it)");
    }
    model.calibration = fs::path(model.weights).replace_extension(".int8.json").string();
  }
  model.calibration_version = FileVersion(model.calibration);
}

ModelEntry ParseModel(const YamlNode& node, const std::string& source, const std::string& base_dir, size_t index) {
  const std::string where = "models[" + std::to_string(index) + "]";
  CheckKeys(node,
            {"name", "model_config", "architecture", "weights", "random_seed", "attention", "precision", "calibration",
             "preprocessing", "batching"},
            source, where);
  ModelEntry model;
  if (!node["name"].IsDefined()) Invalid(source, where + ".name", "is required");
  model.name = Read<std::string>(node["name"], source, where + ".name");
  if (model.name.empty()) Invalid(source, where + ".name", "must not be empty");
  model.config = Architecture(node, source, base_dir, where);
  if (node["weights"].IsDefined()) {
    model.weights = Resolve(Read<std::string>(node["weights"], source, where + ".weights"), base_dir);
    model.weights_version = FileVersion(model.weights);
  }
  ReadIf(node, "random_seed", model.random_seed, source, where);
  ReadPrecision(node, source, base_dir, where, model);
  if (node["preprocessing"].IsDefined()) {
    model.preprocessing = ParsePreprocessing(node["preprocessing"], source, where + ".preprocessing");
  }
  if (node["batching"].IsDefined()) model.batching = ParseBatching(node["batching"], source, where + ".batching");
  return model;
}

ExperimentKind ParseKind(const std::string& kind, const std::string& source, const std::string& field) {
  if (kind == "split") return ExperimentKind::kSplit;
  if (kind == "sticky") return ExperimentKind::kSticky;
  if (kind == "shadow") return ExperimentKind::kShadow;
  Invalid(source, field, "is '" + kind + "'; expected split, sticky or shadow");
}

ExperimentEntry ParseExperiment(const YamlNode& node, const std::string& source, const ServerConfig& config,
                                size_t index) {
  const std::string where = "experiments[" + std::to_string(index) + "]";
  CheckKeys(node, {"name", "kind", "arms", "primary"}, source, where);
  ExperimentEntry experiment;
  ReadIf(node, "name", experiment.name, source, where);
  if (experiment.name.empty()) Invalid(source, where + ".name", "is required");
  std::string kind = "split";
  ReadIf(node, "kind", kind, source, where);
  experiment.kind = ParseKind(kind, source, where + ".kind");
  if (!node["arms"].IsSequence()) Invalid(source, where + ".arms", "must be a list");
  const auto arms = node["arms"].Elements();
  for (size_t i = 0; i < arms.size(); ++i) {
    const std::string w = where + ".arms[" + std::to_string(i) + "]";
    CheckKeys(arms[i], {"model", "weight"}, source, w);
    ExperimentArm arm;
    ReadIf(arms[i], "model", arm.model, source, w);
    ReadIf(arms[i], "weight", arm.weight, source, w);
    if (!config.FindModel(arm.model)) Invalid(source, w + ".model", "names no model ('" + arm.model + "')");
    if (!(arm.weight >= 0)) Invalid(source, w + ".weight", "must be >= 0");
    experiment.arms.push_back(arm);
  }
  if (experiment.arms.size() < 2) Invalid(source, where + ".arms", "needs at least two arms");
  if (experiment.kind == ExperimentKind::kShadow) {
    if (experiment.arms.size() != 2) Invalid(source, where + ".arms", "a shadow experiment has exactly two arms");
    experiment.primary = experiment.arms[0].model;
    ReadIf(node, "primary", experiment.primary, source, where);
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

void ParseLimits(const YamlNode& limits, ServerConfig& config, const std::string& source) {
  CheckKeys(limits,
            {"max_message_bytes", "max_pixels", "max_preprocessing", "max_preprocessing_bytes", "memory_limit_bytes",
             "allocator_cache_bytes"},
            source, "limits");
  ReadIf(limits, "memory_limit_bytes", config.memory_limit_bytes, source, "limits");
  ReadIf(limits, "allocator_cache_bytes", config.allocator_cache_bytes, source, "limits");
  if (config.memory_limit_bytes < 0) Invalid(source, "limits.memory_limit_bytes", "must be >= 0 (0: the cgroup's)");
  if (config.allocator_cache_bytes < 0) Invalid(source, "limits.allocator_cache_bytes", "must be >= 0");
  ReadIf(limits, "max_message_bytes", config.max_message_bytes, source, "limits");
  ReadIf(limits, "max_pixels", config.max_pixels, source, "limits");
  ReadIf(limits, "max_preprocessing", config.max_preprocessing, source, "limits");
  ReadIf(limits, "max_preprocessing_bytes", config.max_preprocessing_bytes, source, "limits");
  if (config.max_message_bytes < 1 || config.max_message_bytes > (1ll << 31) - 1) {
    Invalid(source, "limits.max_message_bytes", "must be in [1, 2^31)");
  }
  if (config.max_pixels < 1) Invalid(source, "limits.max_pixels", "must be >= 1");
  if (config.max_preprocessing < 1) Invalid(source, "limits.max_preprocessing", "must be >= 1");
  if (config.max_preprocessing_bytes < 1) Invalid(source, "limits.max_preprocessing_bytes", "must be >= 1");
}

void ParseTls(const YamlNode& tls, ServerConfig& config, const std::string& source, const std::string& base_dir) {
  CheckKeys(tls, {"certificate", "key", "client_ca"}, source, "tls");
  ReadIf(tls, "certificate", config.tls.certificate, source, "tls");
  ReadIf(tls, "key", config.tls.key, source, "tls");
  ReadIf(tls, "client_ca", config.tls.client_ca, source, "tls");
  if (config.tls.certificate.empty() != config.tls.key.empty()) {
    Invalid(source, "tls", "needs both certificate and key");
  }
  if (!config.tls.client_ca.empty() && config.tls.certificate.empty()) {
    Invalid(source, "tls.client_ca", "needs tls.certificate and tls.key (mTLS is TLS first)");
  }
  for (auto* path : {&config.tls.certificate, &config.tls.key, &config.tls.client_ca}) *path = Resolve(*path, base_dir);
}

void ParseAuth(const YamlNode& auth, ServerConfig& config, const std::string& source, const std::string& base_dir) {
  CheckKeys(auth, {"tokens_file", "allow_plaintext"}, source, "auth");
  ReadIf(auth, "tokens_file", config.tokens_file, source, "auth");
  ReadIf(auth, "allow_plaintext", config.allow_plaintext_tokens, source, "auth");
  config.tokens_file = Resolve(config.tokens_file, base_dir);
}

void ParseConnections(const YamlNode& node, ServerConfig& config, const std::string& source) {
  CheckKeys(node,
            {"keepalive_time_seconds", "keepalive_timeout_seconds", "max_connection_age_seconds",
             "max_connection_age_grace_seconds", "max_connection_idle_seconds"},
            source, "connections");
  auto& c = config.connections;
  const std::pair<const char*, std::chrono::milliseconds*> fields[] = {
      {"keepalive_time_seconds", &c.keepalive_time},
      {"keepalive_timeout_seconds", &c.keepalive_timeout},
      {"max_connection_age_seconds", &c.max_connection_age},
      {"max_connection_age_grace_seconds", &c.max_connection_age_grace},
      {"max_connection_idle_seconds", &c.max_connection_idle}};
  for (const auto& [key, value] : fields) {
    double seconds = static_cast<double>(value->count()) / 1000;
    ReadIf(node, key, seconds, source, "connections");
    if (!(seconds >= 0)) Invalid(source, std::string("connections.") + key, "must be >= 0");
    *value = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  }
}

}  // namespace

bool ModelEntry::SameModelAs(const ModelEntry& other) const {
  return name == other.name && config.ToJsonText() == other.config.ToJsonText() && weights == other.weights &&
         weights_version == other.weights_version && random_seed == other.random_seed && precision == other.precision &&
         calibration == other.calibration && calibration_version == other.calibration_version &&
         preprocessing == other.preprocessing && batching == other.batching;
}

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
  YAML::Node document;
  try {
    document = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(source + ": not valid YAML/JSON: " + e.what());
  }
  const YamlNode root(document);
  CheckKeys(root,
            {"listen", "metrics_listen", "http_listen", "intra_op_threads", "preprocess_threads", "log_format",
             "drain_timeout_seconds", "limits", "default_route", "models", "experiments", "tls", "auth", "connections"},
            source, "");
  ServerConfig config;
  ReadIf(root, "listen", config.listen, source, "");
  ReadIf(root, "metrics_listen", config.metrics_listen, source, "");
  ReadIf(root, "http_listen", config.http_listen, source, "");
  ReadIf(root, "intra_op_threads", config.intra_op_threads, source, "");
  ReadIf(root, "preprocess_threads", config.preprocess_threads, source, "");
  std::string log_format = "text";
  ReadIf(root, "log_format", log_format, source, "");
  if (log_format != "text" && log_format != "json") Invalid(source, "log_format", "must be text or json");
  config.json_logs = log_format == "json";
  double drain_seconds = static_cast<double>(config.drain_timeout.count()) / 1000;
  ReadIf(root, "drain_timeout_seconds", drain_seconds, source, "");
  config.drain_timeout = std::chrono::milliseconds(static_cast<int64_t>(drain_seconds * 1000));
  if (root["limits"].IsDefined()) ParseLimits(root["limits"], config, source);
  if (root["tls"].IsDefined()) ParseTls(root["tls"], config, source, base_dir);
  if (root["auth"].IsDefined()) ParseAuth(root["auth"], config, source, base_dir);
  if (root["connections"].IsDefined()) ParseConnections(root["connections"], config, source);

  const auto models = root["models"].Elements();
  if (models.empty()) Invalid(source, "models", "must list at least one model");
  for (size_t i = 0; i < models.size(); ++i) {
    auto model = ParseModel(models[i], source, base_dir, i);
    if (config.FindModel(model.name))
      Invalid(source, "models[" + std::to_string(i) + "].name", "repeats '" + model.name + "'");
    config.models.push_back(std::move(model));
  }
  if (const auto experiments = root["experiments"]; experiments.IsDefined()) {
    if (!experiments.IsSequence()) Invalid(source, "experiments", "must be a list");
    const auto entries = experiments.Elements();
    for (size_t i = 0; i < entries.size(); ++i) {
      auto experiment = ParseExperiment(entries[i], source, config, i);
      if (config.FindModel(experiment.name) || config.FindExperiment(experiment.name)) {
        Invalid(source, "experiments[" + std::to_string(i) + "].name", "repeats the name '" + experiment.name + "'");
      }
      config.experiments.push_back(std::move(experiment));
    }
  }
  ReadIf(root, "default_route", config.default_route, source, "");
  if (!config.default_route.empty() && !config.FindModel(config.default_route) &&
      !config.FindExperiment(config.default_route)) {
    Invalid(source, "default_route", "names no model or experiment ('" + config.default_route + "')");
  }
  return config;
}

ServerConfig ServerConfig::FromFile(const std::string& path) {
  return FromText(ReadFile(path), path, fs::path(path).parent_path().string());
}

std::string ServerConfig::DefaultConfigDir() {
  if (const char* dir = std::getenv("DETR_CONFIG_DIR"); dir != nullptr && *dir != '\0') return dir;
  std::error_code error;
  const fs::path binary_dir = fs::read_symlink("/proc/self/exe", error).parent_path();
  for (const auto& candidate : {binary_dir / ".." / "share" / "detr", binary_dir / ".." / ".." / "deploy"}) {
    if (fs::exists(candidate / "detr-server.yaml", error)) return fs::weakly_canonical(candidate, error).string();
  }
  return (binary_dir / ".." / "share" / "detr").string();  // where an installed server's files belong
}

}  // namespace detr::service
