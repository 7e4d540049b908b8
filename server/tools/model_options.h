// The command-line options that name a model, shared by the tools that load
// one (detr-predict, detr-calibrate): its config, and its weights or a seed.
#pragma once

#include <cstdint>
#include <iostream>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "server/core/model/model_factory.h"

namespace detr::tools {

struct ModelOptions {
  std::string model_config, weights;
  std::optional<std::uint64_t> random_init;

  /// The model to build (weights, or seeded when only --random-init is given).
  core::ModelSpec Spec() const {
    return {core::ModelConfig::FromJsonFile(model_config), weights, random_init.value_or(0)};
  }
};

/// --model-config (required), and --weights or --random-init.
inline void AddModelOptions(CLI::App& app, ModelOptions& options) {
  app.add_option("--model-config", options.model_config, "model config JSON (official argument names)")
      ->required()
      ->check(CLI::ExistingFile);
  auto* weights = app.add_option("--weights", options.weights, "weights (safetensors)")->check(CLI::ExistingFile);
  auto* random = app.add_option("--random-init", options.random_init, "no weights: seeded random initialisation");
  weights->excludes(random);
}

/// False, with a line saying what to give, when neither weights nor a seed was given.
inline bool HasWeightsOrSeed(const ModelOptions& options, const std::string& program) {
  if (!options.weights.empty() || options.random_init) return true;
  std::cerr << program << ": give --weights, or --random-init SEED for untrained weights\n";
  return false;
}

}  // namespace detr::tools
