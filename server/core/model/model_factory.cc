#include "server/core/model/model_factory.h"

#include <ATen/ATen.h>

namespace detr::core {

LoadedModel BuildModel(const ModelSpec& spec) {
  LoadedModel loaded;
  if (spec.weights_path.empty()) {
    at::manual_seed(spec.random_seed);  // module initialisers draw from the default generator
    loaded.random_weights = true;
  }
  loaded.model = Detr(spec.config);
  if (!spec.weights_path.empty()) loaded.report = LoadWeightsFile(*loaded.model, spec.weights_path);
  loaded.model->eval();
  if (spec.optimize) loaded.model->PrepareForInference(spec.onednn_backbone, spec.backbone_plans);
  return loaded;
}

}  // namespace detr::core
