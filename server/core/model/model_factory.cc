#include "server/core/model/model_factory.h"

#include <optional>

#include <ATen/ATen.h>

#include "server/core/io/int8_calibration.h"

namespace detr::core {
namespace {

// The calibration an int8 spec names (read and checked before any weights
// are loaded, so that a bad file fails fast), or none.
std::optional<Int8Calibration> CalibrationOf(const ModelSpec& spec) {
  if (spec.int8_calibration.empty()) return std::nullopt;
  if (!spec.optimize || !spec.onednn_backbone) {
    throw OneDnnResNet::Unavailable("int8 needs the prepared oneDNN backbone (optimize and onednn_backbone)");
  }
  return ReadInt8Calibration(spec.int8_calibration);
}

// Prepares the model, int8 with `calibration`'s ranges when there is one;
// a calibration of other weights or of another architecture is refused.
void Prepare(Detr& model, const ModelSpec& spec, const std::optional<Int8Calibration>& calibration) {
  OneDnnResNet::Options backbone;
  backbone.plan_capacity = spec.backbone_plans;
  if (calibration) backbone.int8 = calibration->ranges;
  const std::string& path = spec.int8_calibration;
  try {
    model->PrepareForInference(spec.onednn_backbone, std::move(backbone));
  } catch (const std::invalid_argument& e) {
    if (!calibration) throw;
    throw CalibrationError("int8 calibration " + path + " does not fit this model: " + e.what());
  }
  if (!calibration) return;
  const std::string fingerprint = model->onednn_backbone()->WeightsFingerprint();
  if (calibration->weights_fingerprint != fingerprint) {
    throw CalibrationError("int8 calibration " + path + " was measured on other weights (fingerprint " +
                           calibration->weights_fingerprint + "; these weights: " + fingerprint +
                           "): calibrate these weights with detr-calibrate");
  }
}

}  // namespace

LoadedModel BuildModel(const ModelSpec& spec) {
  const auto calibration = CalibrationOf(spec);
  LoadedModel loaded;
  if (spec.weights_path.empty()) {
    at::manual_seed(spec.random_seed);  // module initialisers draw from the default generator
    loaded.random_weights = true;
  }
  loaded.model = Detr(spec.config);
  if (!spec.weights_path.empty()) loaded.report = LoadWeightsFile(*loaded.model, spec.weights_path);
  loaded.model->eval();
  if (spec.optimize) Prepare(loaded.model, spec, calibration);
  return loaded;
}

}  // namespace detr::core
