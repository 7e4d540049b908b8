#include "server/core/model/postprocess.h"

#include <algorithm>

#include <ATen/ATen.h>

namespace detr::core {

PostProcessed PostProcess(const at::Tensor& logits, const at::Tensor& boxes, const at::Tensor& target_sizes) {
  auto probabilities = logits.softmax(-1);
  auto [scores, labels] = probabilities.slice(-1, 0, -1).max(-1);
  auto cx = boxes.select(-1, 0), cy = boxes.select(-1, 1), w = boxes.select(-1, 2), h = boxes.select(-1, 3);
  auto xyxy = at::stack({cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h}, -1);
  auto sizes = target_sizes.to(boxes.scalar_type());
  auto height = sizes.select(1, 0), width = sizes.select(1, 1);
  auto scale = at::stack({width, height, width, height}, 1).unsqueeze(1);
  return {scores, labels, xyxy * scale};
}

Detections ToDetections(const PostProcessed& out, int64_t index, const DetectOptions& options,
                        const std::vector<std::string>& class_names) {
  auto scores = out.scores[index].to(at::kFloat).contiguous();
  auto labels = out.labels[index].to(at::kLong).contiguous();
  auto boxes = out.boxes[index].to(at::kFloat).contiguous();
  const auto* score = scores.data_ptr<float>();
  const auto* label = labels.data_ptr<int64_t>();
  const auto* box = boxes.data_ptr<float>();
  Detections detections;
  for (int64_t q = 0; q < scores.size(0); ++q) {
    if (!(score[q] >= options.score_threshold)) continue;
    Detection d;
    d.class_id = static_cast<int>(label[q]);
    const auto& wanted = options.class_ids;
    if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), d.class_id) == wanted.end()) continue;
    const bool named = d.class_id >= 0 && d.class_id < static_cast<int>(class_names.size());
    d.class_name = named ? class_names[static_cast<size_t>(d.class_id)] : "N/A";
    d.score = score[q];
    std::copy(box + 4 * q, box + 4 * q + 4, d.box);
    detections.push_back(std::move(d));
  }
  std::stable_sort(detections.begin(), detections.end(),
                   [](const Detection& a, const Detection& b) { return a.score > b.score; });
  if (options.max_detections > 0 && static_cast<int>(detections.size()) > options.max_detections) {
    detections.resize(static_cast<std::size_t>(options.max_detections));
  }
  return detections;
}

}  // namespace detr::core
