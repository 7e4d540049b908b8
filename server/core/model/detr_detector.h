// The Detector (api/detector.h) of a DETR model in LibTorch: builds and
// prepares the model, stacks a batch's images, runs the forward pass in
// inference mode and measures its memory, and post-processes each image
// with its own options.
#pragma once

#include <memory>

#include "server/core/api/detector.h"
#include "server/core/model/detr.h"
#include "server/core/model/model_factory.h"

namespace detr::core {

class DetrDetector final : public Detector {
 public:
  /// Builds, loads and prepares the model; throws as BuildModel does, with a
  /// message naming the file and the problem.
  explicit DetrDetector(const ModelSpec& spec);

  DetectionPass Detect(const std::vector<const PreparedImage*>& images,
                       const std::vector<DetectOptions>& options) override;
  const DetectorInfo& info() const override { return info_; }
  ModelMemory memory() const override { return model_->memory(); }

 private:
  Detr model_{nullptr};
  DetectorInfo info_;
  std::vector<std::string> class_names_;  // by class id
};

/// A DetrDetector behind the interface (the server's model factory).
std::unique_ptr<Detector> LoadDetrDetector(const ModelSpec& spec);

}  // namespace detr::core
