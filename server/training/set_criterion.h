// DETR's set prediction loss: Hungarian matching of queries to targets, then
// class cross-entropy (with a down-weighted "no object" class), L1 and
// generalised-IoU box losses, also on each earlier decoder layer (auxiliary
// losses).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>

#include "server/core/model/detr.h"

namespace detr::training {

/// One image's ground truth: labels (T) int64 in [0, num_classes), boxes
/// (T, 4) cx, cy, w, h normalised to [0, 1].
struct Target {
  at::Tensor labels;
  at::Tensor boxes;
};

struct SetCriterionOptions {
  int num_classes = 91;
  double class_cost = 1, l1_cost = 5, giou_cost = 2;        // matcher
  double class_weight = 1, l1_weight = 5, giou_weight = 2;  // loss
  double no_object_weight = 0.1;
};

/// Generalised IoU of every pair: a (N, 4), b (M, 4) as x0, y0, x1, y1 -> (N, M).
at::Tensor GeneralizedBoxIou(const at::Tensor& a, const at::Tensor& b);
at::Tensor CxcywhToXyxy(const at::Tensor& boxes);

/// For each image, (query indices, target indices) of the optimal matching.
std::vector<std::pair<at::Tensor, at::Tensor>> MatchQueries(const at::Tensor& logits, const at::Tensor& boxes,
                                                            const std::vector<Target>& targets,
                                                            const SetCriterionOptions& options);

/// The weighted total (differentiable) and its parts by name ("loss_ce",
/// "loss_bbox", "loss_giou", with "_N" suffixes for auxiliary layer N).
std::pair<at::Tensor, std::map<std::string, double>> SetLoss(const core::DetrOutput& output,
                                                             const std::vector<Target>& targets,
                                                             const SetCriterionOptions& options);

}  // namespace detr::training
