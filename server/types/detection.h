// Plain detection results: what crosses from the model core to the service,
// the CLI and the client (no LibTorch here).
#pragma once

#include <string>
#include <vector>

namespace detr {

struct Detection {
  int class_id = 0;             ///< COCO category id (1..90), as the official head predicts
  std::string class_name;       ///< from the model config's class_names (else COCO's); "N/A" for unused ids
  float score = 0;              ///< softmax probability of the class
  float box[4] = {0, 0, 0, 0};  ///< x0, y0, x1, y1 in pixels of the original image
};

using Detections = std::vector<Detection>;

}  // namespace detr
