#include "server/types/detection_agreement.h"

#include <algorithm>
#include <numeric>
#include <vector>

namespace detr {

float BoxIou(const float a[4], const float b[4]) {
  const float iw = std::max(0.0f, std::min(a[2], b[2]) - std::max(a[0], b[0]));
  const float ih = std::max(0.0f, std::min(a[3], b[3]) - std::max(a[1], b[1]));
  const float inter = iw * ih;
  const float area_a = std::max(0.0f, a[2] - a[0]) * std::max(0.0f, a[3] - a[1]);
  const float area_b = std::max(0.0f, b[2] - b[0]) * std::max(0.0f, b[3] - b[1]);
  const float uni = area_a + area_b - inter;
  return uni > 0 ? inter / uni : 0.0f;
}

double DetectionAgreement(const Detections& a, const Detections& b, float iou_threshold) {
  if (a.empty() && b.empty()) return 1.0;
  std::vector<size_t> order(a.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return a[i].score > a[j].score; });
  std::vector<bool> used(b.size(), false);
  size_t matched = 0;
  for (size_t i : order) {
    int best = -1;
    float best_iou = iou_threshold;
    for (size_t j = 0; j < b.size(); ++j) {
      if (used[j] || b[j].class_id != a[i].class_id) continue;
      const float iou = BoxIou(a[i].box, b[j].box);
      if (iou >= best_iou) {
        best_iou = iou;
        best = static_cast<int>(j);
      }
    }
    if (best >= 0) {
      used[best] = true;
      ++matched;
    }
  }
  return 2.0 * matched / static_cast<double>(a.size() + b.size());
}

}  // namespace detr
