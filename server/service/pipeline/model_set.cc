#include "server/service/pipeline/model_set.h"

#include <stdexcept>

#include <spdlog/spdlog.h>

namespace detr::service {

ModelSet::ModelSet(ServerConfig config, const DetectorFactory& factory, Metrics& metrics, const ModelSet* previous)
    : config_(std::move(config)), router_(config_, runners_) {
  for (const auto& entry : config_.models) {
    if (previous != nullptr) {
      const auto it = previous->runners_.find(entry.name);
      if (it != previous->runners_.end() && it->second->entry().SameModelAs(entry)) {
        runners_.emplace(entry.name, it->second);
        continue;
      }
    }
    std::unique_ptr<core::Detector> detector;
    try {
      detector = factory(entry);
    } catch (const std::exception& e) {
      throw std::runtime_error("model '" + entry.name + "' cannot be loaded: " + e.what());
    }
    runners_.emplace(entry.name, std::make_shared<ModelRunner>(entry, std::move(detector), metrics));
  }
  for (const auto& experiment : config_.experiments) {
    if (experiment.kind == ExperimentKind::kShadow) metrics.ShadowAgreement(experiment.name);  // exists at zero
    experiment_statistics_.emplace(experiment.name, std::make_unique<InferenceStatistics>());
  }
}

const ModelRunner* ModelSet::Find(const std::string& name) const {
  const auto it = runners_.find(name);
  return it == runners_.end() ? nullptr : it->second.get();
}

InferenceStatistics* ModelSet::ExperimentStatistics(const std::string& name) const {
  const auto it = experiment_statistics_.find(name);
  return it == experiment_statistics_.end() ? nullptr : it->second.get();
}

bool ModelSet::Knows(const std::string& name) const {
  return runners_.count(name) != 0 || config_.FindExperiment(name) != nullptr;
}

}  // namespace detr::service
