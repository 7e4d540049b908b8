// Chooses the model for a request: by name, or through an A/B experiment
// (fixed split, sticky split by routing key, or shadow).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "server/service/model_runner.h"
#include "server/service/request_error.h"
#include "server/service/server_config.h"

namespace detr {

struct Route {
  ModelRunner* primary = nullptr;  // answers the request
  ModelRunner* shadow = nullptr;   // also runs, off the response path (shadow experiments)
  std::string experiment;          // empty when the request named a model
};

class Router {
 public:
  Router(const ServerConfig& config, const std::map<std::string, std::unique_ptr<ModelRunner>>& runners);

  /// `target`: a model or experiment name; empty = the default route.
  /// Returns false with `error` set when the target does not exist.
  bool Resolve(const std::string& target, const std::string& routing_key, Route& route, RequestError& error) const;

  /// Position in [0, 1) of a routing key: stable across processes and builds.
  static double StickyPosition(const std::string& routing_key);

 private:
  ModelRunner* Pick(const ExperimentEntry& experiment, const std::string& routing_key) const;

  const ServerConfig& config_;
  const std::map<std::string, std::unique_ptr<ModelRunner>>& runners_;
};

}  // namespace detr
