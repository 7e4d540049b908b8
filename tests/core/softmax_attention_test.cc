// The blocked CPU inference path of softmax attention against the plain one.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include "server/core/model/multihead_attention.h"
#include "server/core/kernels/softmax_attention_inference.h"

namespace detr::core {
namespace {

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(SoftmaxAttentionInferenceTest, EqualsTheUnfusedPathForEveryBlockSizeAndPadding) {
  at::manual_seed(3);
  const int64_t batch = 2, heads = 4, n = 37, m = 53, dh = 8;
  auto q = at::randn({batch, heads, n, dh}), k = at::randn({batch, heads, m, dh}), v = at::randn({batch, heads, m, dh});
  auto padding = at::zeros({batch, m}, at::kBool);
  padding[1].narrow(0, 40, 13).fill_(true);  // the second image has padded keys
  torch::NoGradGuard no_grad;
  for (const auto& mask : {at::Tensor(), padding}) {
    const auto expected = SoftmaxAttentionUnfused(q, k, v, mask);
    for (int64_t block_rows : {0, 1, 5, 16, 37, 100}) {
      const auto actual = SoftmaxAttentionInference(q, k, v, mask, block_rows);
      ASSERT_EQ(actual.sizes(), expected.sizes());
      EXPECT_LE(MaxAbsDiff(actual, expected), 1e-5)
          << "block_rows " << block_rows << (mask.defined() ? ", padded" : "");
    }
  }
}

TEST(SoftmaxAttentionInferenceTest, AcceptsTransposedHeadViewsAndMergesHeadsWithoutACopy) {
  at::manual_seed(4);
  // Heads as the model splits them: views of (B, L, H, dh) tensors.
  auto q = at::randn({1, 20, 2, 4}).transpose(1, 2), k = at::randn({1, 30, 2, 4}).transpose(1, 2);
  auto v = at::randn({1, 30, 2, 4}).transpose(1, 2);
  torch::NoGradGuard no_grad;
  const auto out = SoftmaxAttentionInference(q, k, v, {});
  EXPECT_LE(MaxAbsDiff(out, SoftmaxAttentionUnfused(q, k, v, {})), 1e-5);
  EXPECT_TRUE(out.transpose(1, 2).is_contiguous());
}

TEST(SoftmaxAttentionTest, TrainingKeepsTheDifferentiablePath) {
  auto q = at::randn({1, 2, 5, 4}), k = at::randn({1, 2, 6, 4}), v = at::randn({1, 2, 6, 4});
  q.set_requires_grad(true);
  SoftmaxAttention(q, k, v, {}).sum().backward();
  ASSERT_TRUE(q.grad().defined());
}

}  // namespace
}  // namespace detr::core
