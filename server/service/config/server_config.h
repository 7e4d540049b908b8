// detr-server's configuration file (YAML or JSON): models, experiments,
// addresses and limits. deploy/detr-server.yaml is the annotated example.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "server/core/api/model_config.h"
#include "server/core/api/model_memory.h"
#include "server/image/preprocess.h"

namespace detr::service {

struct BatchingConfig {
  int max_batch_size = 8;
  std::chrono::microseconds max_queue_delay{5000};
  int queue_capacity = 64;
  int workers = 1;

  bool operator==(const BatchingConfig& o) const {
    return max_batch_size == o.max_batch_size && max_queue_delay == o.max_queue_delay &&
           queue_capacity == o.queue_capacity && workers == o.workers;
  }
};

struct PreprocessingConfig {
  int shortest_edge = 800;  // the official evaluation resize ...
  int longest_edge = 1333;
  int canvas_height = 0;  // ... or, when both are set, fit into a fixed
  int canvas_width = 0;   // canvas and pad (every request batches together)
  /// ... or the official resize, then padded into the smallest of these
  /// (image::PrepareOnCanvases): a few input shapes, all planned at start.
  std::vector<image::Canvas> canvases;
  bool fixed_canvas() const { return canvas_height > 0 && canvas_width > 0; }

  /// Every input shape the model can see, when that is a fixed set (a canvas
  /// or canvases); empty when inputs take each image's resized size.
  std::vector<image::Canvas> InputShapes() const {
    if (fixed_canvas()) return {{canvas_height, canvas_width}};
    return canvases;
  }

  bool operator==(const PreprocessingConfig& o) const {
    return shortest_edge == o.shortest_edge && longest_edge == o.longest_edge && canvas_height == o.canvas_height &&
           canvas_width == o.canvas_width && canvases == o.canvases;
  }
};

struct ModelEntry {
  std::string name;
  core::ModelConfig config;     // from model_config (file) or architecture (inline), attention applied
  std::string weights;          // safetensors; empty = seeded random weights
  std::string weights_version;  // the weights file's size and modification time when the config was read
  std::uint64_t random_seed = 0;
  /// "float32", or "int8": the backbone's residual blocks in int8 with the
  /// calibration file (default: the weights' path with .int8.json for
  /// .safetensors), docs/int8.md.
  std::string precision = "float32";
  std::string calibration;          // int8 only
  std::string calibration_version;  // as weights_version
  PreprocessingConfig preprocessing;
  BatchingConfig batching;

  /// Whether `other` serves the same model the same way: same architecture,
  /// the same weights file unchanged on disk, same preprocessing and
  /// batching (a reload keeps such a model running as it is).
  bool SameModelAs(const ModelEntry& other) const;
  /// Backbone plans to keep: one per input shape and batch chunk where the
  /// shapes are fixed (canvas, canvases); 0 (the model core's default) where
  /// inputs take each image's size.
  int BackbonePlans() const {
    return static_cast<int>(preprocessing.InputShapes().size() * core::BatchChunksUpTo(batching.max_batch_size).size());
  }
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

/// TLS for the gRPC port: a certificate and its key, and optionally the CA
/// whose certificates clients must present (mTLS). Empty: plaintext.
struct TlsConfig {
  std::string certificate, key, client_ca;  // PEM files
  bool enabled() const { return !certificate.empty(); }
};

/// How the gRPC server treats connections. The defaults end every
/// connection after about 5 minutes (gRPC adds jitter) with 30 s for its
/// calls to finish: clients then reconnect, and a new pod that the
/// autoscaler added gets its share of long-lived clients.
struct ConnectionConfig {
  std::chrono::milliseconds keepalive_time{60000};     // ping an idle client this often ...
  std::chrono::milliseconds keepalive_timeout{20000};  // ... and drop it when no answer comes in this time
  std::chrono::milliseconds max_connection_age{300000};
  std::chrono::milliseconds max_connection_age_grace{30000};
  std::chrono::milliseconds max_connection_idle{0};  // 0: idle connections may stay
};

struct ServerConfig {
  std::string listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9464";
  std::string http_listen;   // the Open Inference Protocol over HTTP/JSON; empty = none
  int intra_op_threads = 0;  // 0 = the cores allowed, capped by the cgroup CPU quota (cpu_limit.h)
  int preprocess_threads = 2;
  bool json_logs = false;
  std::chrono::milliseconds drain_timeout{10000};
  std::int64_t max_message_bytes = 32 << 20;
  std::int64_t max_pixels = 40'000'000;              // refused before a full decode where the format allows
  std::int64_t max_preprocessing = 64;               // requests admitted to preprocessing at once ...
  std::int64_t max_preprocessing_bytes = 256 << 20;  // ... and their image bytes
  /// The memory the server must fit in (docs/serving.md#memory); 0: the
  /// cgroup's memory.max where there is one, else no limit.
  std::int64_t memory_limit_bytes = 0;
  /// The most freed tensor memory the allocator keeps for reuse; 0: sized
  /// from the models' warm-up passes (at most 2 GiB).
  std::int64_t allocator_cache_bytes = 0;
  std::string default_route;  // a model or experiment name; empty = the first model
  std::vector<ModelEntry> models;
  std::vector<ExperimentEntry> experiments;
  TlsConfig tls;
  std::string tokens_file;  // bearer tokens, one per line; empty: no token needed
  // Tokens without TLS are refused at start (they would travel in the clear)
  // unless this says so: behind a mesh or proxy that terminates TLS.
  bool allow_plaintext_tokens = false;
  ConnectionConfig connections;

  /// Parses YAML/JSON text; relative paths resolve against `base_dir`.
  /// Throws std::invalid_argument naming the source and the field.
  static ServerConfig FromText(const std::string& text, const std::string& source, const std::string& base_dir);
  static ServerConfig FromFile(const std::string& path);
  /// The configuration built into the binary (deploy/detr-server.yaml): two
  /// small models of one architecture, softmax and optimization attention on
  /// all sites, in a 50/50 A/B experiment. Its relative paths resolve against
  /// DefaultConfigDir().
  static ServerConfig Default();
  /// Where the built-in configuration's files are, found at run time: the
  /// DETR_CONFIG_DIR environment variable, else share/detr beside the
  /// binary's folder (an installed server), else deploy/ of the source tree
  /// the binary was built in (build/bin/../../deploy).
  static std::string DefaultConfigDir();

  const ModelEntry* FindModel(const std::string& name) const;
  const ExperimentEntry* FindExperiment(const std::string& name) const;
  /// Where requests that name nothing go: default_route, else the first model.
  const std::string& DefaultRoute() const { return default_route.empty() ? models.front().name : default_route; }
};

}  // namespace detr::service
