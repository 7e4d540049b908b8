// detr-server's configuration file (YAML or JSON): models, experiments,
// addresses and limits. deploy/detr-server.yaml is the annotated example.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "server/core/model_config.h"

namespace detr {

struct BatchingConfig {
  int max_batch_size = 8;
  std::chrono::microseconds max_queue_delay{5000};
  int queue_capacity = 64;
  int workers = 1;
};

struct PreprocessingConfig {
  int shortest_edge = 800;  // the official evaluation resize ...
  int longest_edge = 1333;
  int canvas_height = 0;    // ... or, when both are set, fit into a fixed
  int canvas_width = 0;     // canvas and pad (every request batches together)
  bool fixed_canvas() const { return canvas_height > 0 && canvas_width > 0; }
};

struct ModelEntry {
  std::string name;
  ModelConfig config;       // from model_config (file) or architecture (inline), attention applied
  std::string weights;      // safetensors; empty = seeded random weights
  std::uint64_t random_seed = 0;
  PreprocessingConfig preprocessing;
  BatchingConfig batching;
};

enum class ExperimentKind { kSplit, kSticky, kShadow };
const char* ToString(ExperimentKind kind);

struct ExperimentArm {
  std::string model;
  double weight = 1;
};

struct ExperimentEntry {
  std::string name;
  ExperimentKind kind = ExperimentKind::kSplit;
  std::vector<ExperimentArm> arms;
  std::string primary;  // shadow: the arm that answers
};

struct ServerConfig {
  std::string listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9464";
  int intra_op_threads = 0;     // 0 = every core
  int preprocess_threads = 2;
  bool json_logs = false;
  std::chrono::milliseconds drain_timeout{10000};
  std::int64_t max_message_bytes = 32 << 20;
  std::int64_t max_pixels = 40'000'000;  // refused before a full decode where the format allows
  std::string default_route;              // a model or experiment name; empty = the first model
  std::vector<ModelEntry> models;
  std::vector<ExperimentEntry> experiments;

  /// Parses YAML/JSON text; relative paths resolve against `base_dir`.
  /// Throws std::invalid_argument naming the source and the field.
  static ServerConfig FromText(const std::string& text, const std::string& source, const std::string& base_dir);
  static ServerConfig FromFile(const std::string& path);
  /// The configuration built into the binary: two small models of one
  /// architecture, softmax and optimization attention on all sites, with
  /// seeded random weights, in a 50/50 A/B experiment.
  static ServerConfig Default();

  const ModelEntry* FindModel(const std::string& name) const;
  const ExperimentEntry* FindExperiment(const std::string& name) const;
};

}  // namespace detr
