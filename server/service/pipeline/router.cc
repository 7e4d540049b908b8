#include "server/service/pipeline/router.h"

#include <random>

#include "server/service/pipeline/client_text.h"

namespace detr::service {
namespace {

// Per-thread generator for random splits: no lock, no shared state.
double UniformRandom() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(generator);
}

}  // namespace

Router::Router(const ServerConfig& config, const Runners& runners) : config_(config), runners_(runners) {}

double Router::StickyPosition(const std::string& routing_key) {
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a, then a 64-bit finaliser for spread
  for (unsigned char c : routing_key) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  hash ^= hash >> 33;
  hash *= 0xff51afd7ed558ccdull;
  hash ^= hash >> 33;
  return static_cast<double>(hash >> 11) * 0x1.0p-53;
}

ModelRunner* Router::Pick(const ExperimentEntry& experiment, const std::string& routing_key) const {
  double total = 0;
  for (const auto& arm : experiment.arms) total += arm.weight;
  const bool sticky = experiment.kind == ExperimentKind::kSticky && !routing_key.empty();
  double position = (sticky ? StickyPosition(routing_key) : UniformRandom()) * total;
  for (const auto& arm : experiment.arms) {
    if (position < arm.weight) return runners_.at(arm.model).get();
    position -= arm.weight;
  }
  return runners_.at(experiment.arms.back().model).get();
}

absl::StatusOr<Route> Router::Resolve(const std::string& target, const std::string& routing_key) const {
  const std::string& name = !target.empty() ? target : config_.DefaultRoute();
  if (auto it = runners_.find(name); it != runners_.end()) return Route{it->second.get(), nullptr, ""};
  const auto* experiment = config_.FindExperiment(name);
  if (!experiment) {
    return absl::NotFoundError("no model or experiment named '" + Echo(name) + "' (ListModels lists them)");
  }
  Route route;
  route.experiment = experiment->name;
  if (experiment->kind == ExperimentKind::kShadow) {
    const auto& other = experiment->arms[0].model == experiment->primary ? experiment->arms[1] : experiment->arms[0];
    route.primary = runners_.at(experiment->primary).get();
    route.shadow = runners_.at(other.model).get();
  } else {
    route.primary = Pick(*experiment, routing_key);
  }
  return route;
}

}  // namespace detr::service
