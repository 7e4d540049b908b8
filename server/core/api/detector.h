// The model core's face to the service: a Detector takes prepared images and
// returns plain detections and the measurements of the pass, so that the
// service, its tests and its fakes need no LibTorch. The LibTorch
// implementation is model/detr_detector.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/core/api/model_config.h"
#include "server/core/api/model_memory.h"
#include "server/core/api/prepared_image.h"
#include "server/types/detection.h"

namespace detr::core {

/// What a request keeps of a model's detections.
struct DetectOptions {
  float score_threshold = 0;   ///< detections below it are dropped
  int max_detections = 0;      ///< at most this many, best first; 0 = all
  std::vector<int> class_ids;  ///< only these classes; empty = all
};

/// One forward pass over a batch.
struct DetectionPass {
  std::vector<Detections> detections;  ///< per image, in input order, filtered by its options
  double inference_seconds = 0;        ///< the batch's forward pass
  double postprocess_seconds = 0;      ///< turning the outputs into detections, the whole batch
  std::uint64_t peak_bytes = 0;        ///< peak bytes the forward pass allocated
};

/// What a detector is, for logs, metrics and ListModels.
struct DetectorInfo {
  ModelConfig config;
  std::int64_t parameter_count = 0;
  bool random_weights = false;          ///< no trained weights: detections are meaningless
  std::string backbone_engine;          ///< what runs the backbone's convolutions, and why
  std::string precision = "float32";    ///< of the backbone's convolutions: float32 or int8
  std::vector<std::string> load_notes;  ///< what loading the weights reported (e.g. skipped keys)
};

class Detector {
 public:
  virtual ~Detector() = default;

  /// Detects objects in a batch of images of one input shape; options[i]
  /// filters images[i]. Thread-safe: several workers may call it at once.
  /// Throws std::exception (with a message for people) when the pass fails.
  virtual DetectionPass Detect(const std::vector<const PreparedImage*>& images,
                               const std::vector<DetectOptions>& options) = 0;

  virtual const DetectorInfo& info() const = 0;

  /// What the model holds now between passes (weights, plans). Thread-safe.
  /// A detector that does not know reports zeros.
  virtual ModelMemory memory() const { return {}; }
};

}  // namespace detr::core
