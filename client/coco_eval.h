// COCO-style detection evaluation with pycocotools' definitions: IoU
// thresholds .50:.05:.95, 101-point interpolated precision, at most 100
// detections per image, area ranges small < 32² <= medium < 96² <= large,
// crowd ground truth matched without penalty. Torch-free.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace detr::client {

struct CocoBox {
  int image_id = 0;
  int category_id = 0;
  float x = 0, y = 0, w = 0, h = 0;  // COCO order: left, top, width, height (pixels)
  float score = 1;                   // detections only
  float area = -1;                   // ground truth: annotation area (< 0: w * h)
  bool crowd = false;                // ground truth only
};

struct CocoSummary {
  double ap = -1, ap50 = -1, ap75 = -1, ap_small = -1, ap_medium = -1, ap_large = -1;
  double ar1 = -1, ar10 = -1, ar100 = -1;
};

/// Evaluates `detections` against `ground_truth` over `image_ids`. A value
/// of -1 means "no ground truth of that kind" (as pycocotools prints it).
CocoSummary EvaluateCoco(const std::vector<CocoBox>& ground_truth, const std::vector<CocoBox>& detections,
                         const std::vector<int>& image_ids);

/// The table pycocotools prints (" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.xyz").
std::string FormatCocoSummary(const CocoSummary& summary);

/// Reads a COCO annotations file: ground truth boxes, image id by file name,
/// category names by id. Throws std::runtime_error naming the file.
struct CocoDataset {
  std::vector<CocoBox> ground_truth;
  std::map<std::string, int> image_ids;  // file_name -> id
  std::map<int, std::string> categories;
};
CocoDataset ReadCocoAnnotations(const std::string& path);

}  // namespace detr::client
