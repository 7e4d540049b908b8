// The matcher against brute force, DETR's set loss, and the backbone's
// bfloat16 training passes.
#include <algorithm>
#include <numeric>
#include <random>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "server/core/model/backbone.h"
#include "server/core/runtime/runtime.h"
#include "server/training/hungarian.h"
#include "server/training/set_criterion.h"
#include "tests/common/tiny_model_config.h"

namespace detr::training {
namespace {

double BruteForceMinimum(const std::vector<double>& cost, int rows, int cols) {
  std::vector<int> columns(cols);
  std::iota(columns.begin(), columns.end(), 0);
  double best = 1e300;
  do {  // every ordering; the first `rows` columns form an assignment
    double sum = 0;
    for (int r = 0; r < rows; ++r) sum += cost[r * cols + columns[r]];
    best = std::min(best, sum);
  } while (std::next_permutation(columns.begin(), columns.end()));
  return best;
}

TEST(HungarianTest, MatchesBruteForceOnSmallMatrices) {
  std::mt19937 rng(20261127);
  std::uniform_real_distribution<double> value(-5, 5);
  for (int trial = 0; trial < 300; ++trial) {
    const int cols = 1 + trial % 6, rows = 1 + (trial / 6) % cols;
    std::vector<double> cost(rows * cols);
    for (auto& c : cost) c = trial % 3 == 0 ? std::round(value(rng)) : value(rng);  // ties too
    const auto assignment = SolveAssignment(cost, rows, cols);
    ASSERT_EQ(static_cast<int>(assignment.size()), rows);
    std::vector<int> sorted = assignment;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << "a column used twice";
    double sum = 0;
    for (int r = 0; r < rows; ++r) sum += cost[r * cols + assignment[r]];
    EXPECT_NEAR(sum, BruteForceMinimum(cost, rows, cols), 1e-9) << rows << "x" << cols;
  }
  EXPECT_THROW(SolveAssignment({1, 2}, 2, 1), std::invalid_argument);
}

TEST(SetCriterionTest, GeneralizedIouOfKnownBoxes) {
  auto a = at::tensor({0.0, 0.0, 2.0, 2.0}, at::kDouble).view({1, 4});
  auto same = GeneralizedBoxIou(a, a);
  EXPECT_NEAR(same.item<double>(), 1.0, 1e-12);
  // Half-overlapping: IoU 2/6; hull 2x3 = union, so GIoU = IoU.
  auto b = at::tensor({1.0, 0.0, 3.0, 2.0}, at::kDouble).view({1, 4});
  EXPECT_NEAR(GeneralizedBoxIou(a, b).item<double>(), 2.0 / 6.0, 1e-12);
  // Disjoint: IoU 0, hull 2x4 = 8, union 8... (4, 0, 6, 2): hull 6x2 = 12, union 8 -> -4/12.
  auto c = at::tensor({4.0, 0.0, 6.0, 2.0}, at::kDouble).view({1, 4});
  EXPECT_NEAR(GeneralizedBoxIou(a, c).item<double>(), -4.0 / 12.0, 1e-12);
}

TEST(SetCriterionTest, PerfectPredictionsHaveNoBoxLossAndMatchTheRightQueries) {
  SetCriterionOptions options;
  options.num_classes = 3;
  Target target{at::tensor({2, 0}, at::kLong), at::tensor({0.3, 0.3, 0.2, 0.2, 0.7, 0.6, 0.3, 0.4}).view({2, 4})};
  core::DetrOutput output;
  output.boxes = at::rand({1, 5, 4}) * 0.1 + 0.45;
  output.boxes[0][3] = target.boxes[0];  // query 3 predicts target 0, query 1 target 1
  output.boxes[0][1] = target.boxes[1];
  output.logits = at::zeros({1, 5, 4});
  output.logits[0].select(1, 3).fill_(20);  // every query says "no object" ...
  output.logits[0][3][3] = 0;
  output.logits[0][3][2] = 20;  // ... except the two that hit
  output.logits[0][1][3] = 0;
  output.logits[0][1][0] = 20;
  const auto matches = MatchQueries(output.logits, output.boxes, {target}, options);
  EXPECT_EQ(matches[0].first[0].item<int64_t>(), 3);
  EXPECT_EQ(matches[0].first[1].item<int64_t>(), 1);
  auto [total, parts] = SetLoss(output, {target}, options);
  EXPECT_NEAR(parts["loss_bbox"], 0.0, 1e-6);
  EXPECT_NEAR(parts["loss_giou"], 0.0, 1e-6);
  EXPECT_LT(parts["loss_ce"], 1e-6);
}

TEST(SetCriterionTest, GradientsReachEveryTrainedModuleWithAuxiliaryLosses) {
  at::manual_seed(3);
  for (auto type : {core::AttentionType::kSoftmax, core::AttentionType::kOptimization}) {
    const auto config = testing::TinyModelConfig(type, /*dec_layers=*/2, /*num_queries=*/6, /*num_classes=*/3);
    core::Detr model(config);
    model->train();
    auto out = model->forward(at::randn({2, 3, 64, 64}), at::zeros({2, 64, 64}, at::kBool), /*all_layers=*/true);
    ASSERT_EQ(out.aux.size(), 1u);
    std::vector<Target> targets = {{at::tensor({1}, at::kLong), at::tensor({0.5, 0.5, 0.2, 0.3}).view({1, 4})},
                                   {at::empty({0}, at::kLong), at::empty({0, 4})}};  // an image with nothing in it
    SetCriterionOptions options;
    options.num_classes = 3;
    auto [total, parts] = SetLoss(out, targets, options);
    EXPECT_TRUE(parts.count("loss_giou_0")) << "auxiliary layer loss";
    total.backward();
    for (const auto& item : model->named_parameters()) {
      if (!item.value().requires_grad()) continue;
      ASSERT_TRUE(item.value().grad().defined()) << item.key() << " " << core::ToString(type);
      EXPECT_TRUE(item.value().grad().isfinite().all().item<bool>()) << item.key();
    }
  }
}

// detr-train --backbone-bf16: the training passes' features are the float32
// ones to bfloat16's precision, gradients reach the float32 weights, and eval
// passes stay float32.
TEST(Bfloat16BackboneTest, TrainingPassesAreCloseToFloat32AndEvalPassesStayFloat32) {
  if (!core::CpuRunsBfloat16Natively()) GTEST_SKIP() << "no AMX or AVX-512 BF16 here (detr-train trains in float32)";
  at::manual_seed(5);
  core::Backbone backbone("resnet18", /*dilation=*/false);
  const auto pixels = at::randn({2, 3, 96, 128});
  const auto mask = at::zeros({2, 96, 128}, at::kBool);
  backbone->train();
  const auto float32 = backbone->forward(pixels, mask).first.detach();
  backbone->UseBfloat16Training(true);
  auto features = backbone->forward(pixels, mask).first;
  EXPECT_EQ(features.scalar_type(), at::kFloat);
  EXPECT_EQ(at::mm(float32.flatten(1), float32.flatten(1).t()).scalar_type(), at::kFloat)
      << "the autocast scope ends with the pass";
  const double error = ((features - float32).norm() / float32.norm()).item<double>();
  EXPECT_GT(error, 1e-4) << "the pass ran in bfloat16";
  EXPECT_LT(error, 0.05);
  features.sum().backward();
  for (const auto& item : backbone->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_EQ(item.value().grad().scalar_type(), at::kFloat) << item.key();
  }
  backbone->eval();
  const auto eval = backbone->forward(pixels, mask).first;
  EXPECT_LT(((eval - float32).norm() / float32.norm()).item<double>(), 1e-5) << "eval passes in float32";
}

}  // namespace
}  // namespace detr::training
