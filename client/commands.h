// The subcommands of detr-client. Each returns the process exit code.
#pragma once

#include <string>
#include <vector>

#include "client/detector_client.h"

namespace detr::client {

struct DetectCommand {
  std::vector<std::string> inputs;  // files or directories
  std::string model, draw_dir, routing_key;
  float threshold = 0.5f;
  int max_detections = 0;
};
int RunDetect(const ClientOptions& client, const DetectCommand& command);

struct BenchCommand {
  int concurrency = 1;
  int requests = 0;  // 0: run for `duration`
  double duration = 0;
  double rate = 0;  // requests per second across all workers; 0 = as fast as possible
  std::string model;
  std::vector<std::string> images;  // none: a generated 640x480 image
  bool raw = false;                 // send decoded RGB pixels instead of the encoded file
  bool json = false;
};
int RunBench(const ClientOptions& client, const BenchCommand& command);

struct AbCommand {
  std::string model_a, model_b;
  std::vector<std::string> images;
  float threshold = 0.5f;
  int repeats = 1;
  bool json = false;  // the figures as one JSON object instead of a table
};
int RunAb(const ClientOptions& client, const AbCommand& command);

struct EvalCommand {
  std::string annotations;  // COCO JSON
  std::string images;       // directory holding its file_names
  std::string model_a;      // "" = the server's route
  std::string model_b;      // set: a side-by-side table
  std::string json_path;    // set: also write the figures as JSON here
};
int RunEval(const ClientOptions& client, const EvalCommand& command);

/// The server's models (attention per site, parameters, batching) and
/// experiments (kind, arms): a table, or JSON.
int RunModels(const ClientOptions& client, bool json);

/// Exit code 0 only when the server (or `model`) reports SERVING.
int RunHealth(const ClientOptions& client, const std::string& model);

/// Image files given as files or directories (directories: by extension).
std::vector<std::string> ExpandImagePaths(const std::vector<std::string>& inputs);

}  // namespace detr::client
