// A detection request and its answer as the pipeline sees them, whatever the
// protocol: each front end (detr.v1 gRPC, the Open Inference Protocol over
// gRPC and HTTP) converts its messages to and from these.
#pragma once

#include <cstdint>
#include <string>

#include "server/core/api/detector.h"
#include "server/types/detection.h"

namespace detr::service {

/// The image of a request: encoded bytes (JPEG, PNG, ...) or raw 8-bit RGB.
struct ImageInput {
  enum class Kind { kMissing, kEncoded, kRaw };
  Kind kind = Kind::kMissing;
  std::string bytes;                   ///< the encoded file, or width x height x 3 RGB bytes
  std::int64_t width = 0, height = 0;  ///< raw only
};

struct DetectInput {
  ImageInput image;
  std::string model;        ///< a model or experiment; empty: the server's default route
  std::string routing_key;  ///< sticky experiments: the same key reaches the same arm
  std::string request_id;   ///< echoed in the answer and the logs
  core::DetectOptions options;
};

/// Which attention each site of the serving model runs.
struct AttentionTypes {
  std::string encoder_self, decoder_self, decoder_cross;
};

/// Server-side seconds per stage.
struct StageTimings {
  double queue = 0, preprocess = 0, inference = 0, postprocess = 0;
};

struct DetectResult {
  Detections detections;  ///< best first
  std::string model;      ///< the model that served it
  AttentionTypes attention;
  std::string experiment;  ///< the experiment that routed it, if any
  std::string request_id;
  int batch_size = 0;  ///< requests in the same forward pass
  StageTimings timings;
  std::uint64_t inference_memory_bytes = 0;  ///< the pass's peak bytes / batch size
  int image_width = 0, image_height = 0;     ///< of the original image
};

}  // namespace detr::service
