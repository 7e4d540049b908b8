// The models and experiments of one configuration: a runner per model and the
// router over them. Requests hold the set they were routed by, so a new
// configuration can replace it (hot reload) while its requests finish; the
// set's runners stop once the last set using them is gone. Runners of models
// that a new configuration leaves unchanged pass to the new set as they are.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "server/core/api/detector.h"
#include "server/service/config/server_config.h"
#include "server/service/observability/metrics.h"
#include "server/service/pipeline/model_runner.h"
#include "server/service/pipeline/router.h"

namespace detr::service {

/// Builds a model's Detector (the server passes the LibTorch one; tests, fakes).
/// Throws std::exception with a message naming the problem.
using DetectorFactory = std::function<std::unique_ptr<core::Detector>(const ModelEntry&)>;

class ModelSet {
 public:
  /// Loads every model of `config`, reusing `previous`'s runner for a model
  /// whose entry is unchanged. Throws std::runtime_error naming the model
  /// that cannot be loaded.
  ModelSet(ServerConfig config, const DetectorFactory& factory, Metrics& metrics, const ModelSet* previous = nullptr);
  ModelSet(const ModelSet&) = delete;
  ModelSet& operator=(const ModelSet&) = delete;

  const ServerConfig& config() const { return config_; }
  const Router& router() const { return router_; }
  const Router::Runners& runners() const { return runners_; }
  /// The runner of model `name`, or null.
  const ModelRunner* Find(const std::string& name) const;
  /// Whether `name` is one of this configuration's models or experiments.
  bool Knows(const std::string& name) const;
  /// The request statistics of experiment `name`, or null. A model's are
  /// its runner's (and go with the runner from set to set); an experiment's
  /// start again with each configuration.
  InferenceStatistics* ExperimentStatistics(const std::string& name) const;

 private:
  const ServerConfig config_;
  Router::Runners runners_;
  Router router_;
  std::map<std::string, std::unique_ptr<InferenceStatistics>> experiment_statistics_;
};

}  // namespace detr::service
