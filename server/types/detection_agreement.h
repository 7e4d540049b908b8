// How far two sets of detections of one image agree (torch-free): the
// server's shadow experiments and the client's A/B comparison use it.
#pragma once

#include "server/types/detection.h"

namespace detr {

/// Intersection over union of two x0,y0,x1,y1 boxes.
float BoxIou(const float a[4], const float b[4]);

/// F1 of a greedy one-to-one matching, best scores first: a pair matches when
/// the classes are equal and IoU >= iou_threshold. 1 when both are empty.
double DetectionAgreement(const Detections& a, const Detections& b, float iou_threshold = 0.5f);

}  // namespace detr
