#include "server/detector_loading.h"

#include "server/core/model/detr_detector.h"
#include "server/core/model/model_factory.h"

namespace detr {

std::unique_ptr<core::Detector> LoadDetector(const service::ModelEntry& entry) {
  core::ModelSpec spec{entry.config, entry.weights, entry.random_seed};
  if (const int plans = entry.BackbonePlans()) spec.backbone_plans = plans;
  if (entry.precision == "int8") spec.int8_calibration = entry.calibration;
  return core::LoadDetrDetector(spec);
}

}  // namespace detr
