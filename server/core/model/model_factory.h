// Building a ready-to-run model from a config and weights (or a seed).
#pragma once

#include <cstdint>
#include <string>

#include "server/core/io/checkpoint.h"
#include "server/core/model/detr.h"

namespace detr::core {

struct ModelSpec {
  ModelConfig config;
  /// safetensors weights; empty = seeded random initialisation (no trained
  /// weights yet), which callers must say in their logs.
  std::string weights_path;
  std::uint64_t random_seed = 0;
  /// Fold batch-norms, channels-last, eval, no gradients (PrepareForInference).
  bool optimize = true;
  /// With optimize: run the backbone through oneDNN directly (Winograd
  /// convolutions, onednn_resnet.h) when built with it.
  bool onednn_backbone = true;
  /// With onednn_backbone: the most backbone plans kept (one per input shape
  /// and batch chunk; each holds weights reordered for its shape).
  int backbone_plans = OneDnnResNet::kDefaultPlanCapacity;
  /// Set (with optimize and onednn_backbone): the backbone's blocks run in
  /// int8 with this calibration file (io/int8_calibration.h).
  std::string int8_calibration = {};
};

struct LoadedModel {
  Detr model{nullptr};
  LoadReport report;
  bool random_weights = false;
};

/// Builds, loads and prepares the model. Throws CheckpointError,
/// safetensors::FormatError or std::invalid_argument with a message naming
/// the file and the problem; for int8, CalibrationError (a calibration that
/// is missing, malformed or of other weights, naming the file) or
/// OneDnnResNet::Unavailable (no int8 convolutions here). Never returns a
/// model that is partly int8.
LoadedModel BuildModel(const ModelSpec& spec);

}  // namespace detr::core
