#include "server/training/set_criterion.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "server/training/hungarian.h"

namespace detr::training {
namespace {

struct LayerLoss {
  at::Tensor ce, l1, giou;
};

LayerLoss LossOfLayer(const at::Tensor& logits, const at::Tensor& boxes, const std::vector<Target>& targets,
                      const SetCriterionOptions& options) {
  const auto matches = MatchQueries(logits, boxes, targets, options);
  const int64_t batch = logits.size(0), queries = logits.size(1);
  // Every query is "no object" (the last class) unless matched.
  auto classes = at::full({batch, queries}, options.num_classes, logits.options().dtype(at::kLong));
  std::vector<at::Tensor> matched_boxes, target_boxes;
  for (int64_t b = 0; b < batch; ++b) {
    const auto& [query_index, target_index] = matches[b];
    if (query_index.numel() == 0) continue;
    classes[b].index_put_({query_index}, targets[b].labels.index({target_index}));
    matched_boxes.push_back(boxes[b].index({query_index}));
    target_boxes.push_back(targets[b].boxes.index({target_index}));
  }
  auto class_weights = at::ones({options.num_classes + 1}, logits.options());
  class_weights[options.num_classes] = options.no_object_weight;
  LayerLoss loss;
  loss.ce = at::cross_entropy_loss(logits.reshape({-1, options.num_classes + 1}), classes.reshape({-1}), class_weights);
  int64_t count = 0;
  for (const auto& t : targets) count += t.labels.numel();
  const double normaliser = std::max<int64_t>(count, 1);
  if (matched_boxes.empty()) {
    loss.l1 = boxes.sum() * 0;
    loss.giou = boxes.sum() * 0;
    return loss;
  }
  auto predicted = at::cat(matched_boxes), expected = at::cat(target_boxes);
  loss.l1 = (predicted - expected).abs().sum() / normaliser;
  loss.giou = (1 - GeneralizedBoxIou(CxcywhToXyxy(predicted), CxcywhToXyxy(expected)).diagonal()).sum() / normaliser;
  return loss;
}

}  // namespace

at::Tensor CxcywhToXyxy(const at::Tensor& boxes) {
  auto cx = boxes.select(-1, 0), cy = boxes.select(-1, 1), w = boxes.select(-1, 2), h = boxes.select(-1, 3);
  return at::stack({cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h}, -1);
}

at::Tensor GeneralizedBoxIou(const at::Tensor& a, const at::Tensor& b) {
  auto area = [](const at::Tensor& x) {
    return (x.select(-1, 2) - x.select(-1, 0)) * (x.select(-1, 3) - x.select(-1, 1));
  };
  auto area_a = area(a).unsqueeze(1), area_b = area(b).unsqueeze(0);
  auto top_left = at::max(a.unsqueeze(1).slice(-1, 0, 2), b.unsqueeze(0).slice(-1, 0, 2));
  auto bottom_right = at::min(a.unsqueeze(1).slice(-1, 2, 4), b.unsqueeze(0).slice(-1, 2, 4));
  auto wh = (bottom_right - top_left).clamp_min(0);
  auto inter = wh.select(-1, 0) * wh.select(-1, 1);
  auto uni = area_a + area_b - inter;
  auto iou = inter / uni;
  auto hull_tl = at::min(a.unsqueeze(1).slice(-1, 0, 2), b.unsqueeze(0).slice(-1, 0, 2));
  auto hull_br = at::max(a.unsqueeze(1).slice(-1, 2, 4), b.unsqueeze(0).slice(-1, 2, 4));
  auto hull_wh = (hull_br - hull_tl).clamp_min(0);
  auto hull = hull_wh.select(-1, 0) * hull_wh.select(-1, 1);
  return iou - (hull - uni) / hull;
}

std::vector<std::pair<at::Tensor, at::Tensor>> MatchQueries(const at::Tensor& logits, const at::Tensor& boxes,
                                                            const std::vector<Target>& targets,
                                                            const SetCriterionOptions& options) {
  torch::NoGradGuard no_grad;
  std::vector<std::pair<at::Tensor, at::Tensor>> matches;
  const auto index_options = at::TensorOptions().dtype(at::kLong);
  for (int64_t b = 0; b < logits.size(0); ++b) {
    const auto& target = targets[b];
    const int64_t count = target.labels.numel(), queries = logits.size(1);
    if (count == 0) {
      matches.emplace_back(at::empty({0}, index_options), at::empty({0}, index_options));
      continue;
    }
    auto probabilities = logits[b].softmax(-1);                       // (Q, C+1)
    auto class_cost = -probabilities.index_select(1, target.labels);  // (Q, T)
    auto l1_cost = at::cdist(boxes[b], target.boxes.to(boxes.scalar_type()), 1);
    auto giou_cost = -GeneralizedBoxIou(CxcywhToXyxy(boxes[b]), CxcywhToXyxy(target.boxes.to(boxes.scalar_type())));
    auto cost = (options.class_cost * class_cost + options.l1_cost * l1_cost + options.giou_cost * giou_cost)
                    .t()
                    .contiguous()
                    .to(at::kDouble);  // (T, Q)
    std::vector<double> values(cost.data_ptr<double>(), cost.data_ptr<double>() + cost.numel());
    const auto assignment = SolveAssignment(values, static_cast<int>(count), static_cast<int>(queries));
    std::vector<int64_t> query_index(assignment.begin(), assignment.end());
    std::vector<int64_t> target_index(count);
    for (int64_t t = 0; t < count; ++t) target_index[t] = t;
    matches.emplace_back(at::tensor(query_index, index_options), at::tensor(target_index, index_options));
  }
  return matches;
}

std::pair<at::Tensor, std::map<std::string, double>> SetLoss(const core::DetrOutput& output,
                                                             const std::vector<Target>& targets,
                                                             const SetCriterionOptions& options) {
  std::map<std::string, double> parts;
  at::Tensor total;
  auto add = [&](const LayerLoss& loss, const std::string& suffix) {
    auto weighted = options.class_weight * loss.ce + options.l1_weight * loss.l1 + options.giou_weight * loss.giou;
    total = total.defined() ? total + weighted : weighted;
    parts["loss_ce" + suffix] = loss.ce.item<double>();
    parts["loss_bbox" + suffix] = loss.l1.item<double>();
    parts["loss_giou" + suffix] = loss.giou.item<double>();
  };
  add(LossOfLayer(output.logits, output.boxes, targets, options), "");
  for (size_t i = 0; i < output.aux.size(); ++i) {
    add(LossOfLayer(output.aux[i].first, output.aux[i].second, targets, options), "_" + std::to_string(i));
  }
  return {total, parts};
}

}  // namespace detr::training
