// Chooses the model for a request: by name, or through an A/B experiment
// (fixed split, sticky split by routing key, or shadow).
#pragma once

#include <map>
#include <memory>
#include <string>

#include <absl/status/statusor.h>

#include "server/service/config/server_config.h"
#include "server/service/pipeline/model_runner.h"

namespace detr::service {

struct Route {
  ModelRunner* primary = nullptr;  ///< answers the request
  ModelRunner* shadow = nullptr;   ///< also runs, off the response path (shadow experiments)
  std::string experiment;          ///< empty when the request named a model
};

class Router {
 public:
  using Runners = std::map<std::string, std::shared_ptr<ModelRunner>>;

  /// Both must outlive the router (a ModelSet owns all three).
  Router(const ServerConfig& config, const Runners& runners);

  /// `target`: a model or experiment name; empty = the default route.
  /// NOT_FOUND when there is none of that name.
  absl::StatusOr<Route> Resolve(const std::string& target, const std::string& routing_key) const;

  /// Position in [0, 1) of a routing key: stable across processes and builds.
  static double StickyPosition(const std::string& routing_key);

 private:
  ModelRunner* Pick(const ExperimentEntry& experiment, const std::string& routing_key) const;

  const ServerConfig& config_;
  const Runners& runners_;
};

}  // namespace detr::service
