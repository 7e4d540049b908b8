// The transformer's matrix products through oneDNN against LibTorch's.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <ATen/core/grad_mode.h>

#include "server/core/kernels/onednn_matmul.h"

namespace detr::core {
namespace {

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(OneDnnMatmulTest, LinearEqualsAtLinearWithAndWithoutBiasAndRelu) {
  at::manual_seed(5);
  auto x = at::randn({2, 37, 24});
  auto weight = at::randn({3 * 16, 24});
  auto bias = at::randn({3 * 16});
  at::NoGradGuard no_grad;
  // A slice of the rows, as the attention's in-projection takes its q/k/v parts.
  const auto part = weight.narrow(0, 16, 16), part_bias = bias.narrow(0, 16, 16);
  EXPECT_LE(MaxAbsDiff(Linear(x, part, part_bias), at::linear(x, part, part_bias)), 1e-5);
  EXPECT_LE(MaxAbsDiff(Linear(x, weight, {}), at::linear(x, weight)), 1e-5);
  const auto relu = Linear(x, weight, bias, /*relu=*/true);
  EXPECT_LE(MaxAbsDiff(relu, at::linear(x, weight, bias).relu()), 1e-5);
  EXPECT_EQ(relu.sizes(), (std::vector<int64_t>{2, 37, 48}));
  EXPECT_GE(relu.min().item<float>(), 0.0f);
  // A transposed (non-contiguous) input.
  auto xt = at::randn({24, 37}).t();
  EXPECT_LE(MaxAbsDiff(Linear(xt, weight, bias), at::linear(xt, weight, bias)), 1e-5);
}

TEST(OneDnnMatmulTest, MatmulIntoTakesTransposedViews) {
  at::manual_seed(6);
  auto a = at::randn({50, 8}), keys = at::randn({70, 8});
  auto out = at::empty({50, 70});
  at::NoGradGuard no_grad;
  MatmulInto(a, keys.t(), out);
  EXPECT_LE(MaxAbsDiff(out, at::mm(a, keys.t())), 1e-5);
  auto rows = at::empty({20, 8});
  MatmulInto(out.narrow(0, 0, 20), keys, rows);
  EXPECT_LE(MaxAbsDiff(rows, at::mm(out.narrow(0, 0, 20), keys)), 1e-4);
}

TEST(OneDnnMatmulTest, LinearKeepsAutogradWhenGradientsAreOn) {
  auto x = at::randn({4, 6});
  x.set_requires_grad(true);
  auto weight = at::randn({3, 6});
  Linear(x, weight, {}, /*relu=*/true).sum().backward();
  ASSERT_TRUE(x.grad().defined());
}

}  // namespace
}  // namespace detr::core
