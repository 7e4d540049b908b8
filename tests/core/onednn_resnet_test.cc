// The oneDNN backbone (Winograd convolutions in the blocked layout) against
// the LibTorch ResNet body it replaces, on the same folded weights.
#include <algorithm>
#include <iostream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include "server/core/model/resnet.h"

namespace detr::core {
namespace {

// A body with random weights and batch-norm statistics far from identity, so
// that folding and every convolution matter.
ResNetBody RandomBody(const std::string& name, bool dilation) {
  at::manual_seed(7);
  ResNetBody body(name, dilation);
  torch::NoGradGuard no_grad;
  for (auto& buffer : body->named_buffers()) {
    const bool variance = buffer.key().find("running_var") != std::string::npos;
    buffer.value().copy_(variance ? at::rand_like(buffer.value()) + 0.5 : at::randn_like(buffer.value()) * 0.1);
  }
  for (auto& parameter : body->named_parameters()) {
    if (parameter.key().find("bn") != std::string::npos || parameter.key().find("downsample.1") != std::string::npos) {
      parameter.value().copy_(at::randn_like(parameter.value()) * 0.1 +
                              (parameter.key().find("weight") != std::string::npos ? 1 : 0));
    }
  }
  return body;
}

// Every primitive oneDNN runs for this input is JIT code, never its
// reference implementation. Run under ONEDNN_MAX_CPU_ISA=AVX2 and =SSE41 too
// (tests/core/CMakeLists.txt), this covers CPUs without AVX-512.
void ExpectNoReferenceCode(ResNetBodyImpl& body, at::IntArrayRef sizes) {
  ASSERT_NE(body.engine().rfind("oneDNN", 0), std::string::npos) << body.engine();
  const auto implementations = body.onednn()->Implementations(sizes);
  ASSERT_FALSE(implementations.empty());
  std::string all;
  for (const auto& name : implementations) all += name + " ";
  for (const auto& name : implementations) EXPECT_TRUE(OneDnnResNet::NotReference(name)) << all;
  std::cout << body.engine() << "\n  plan for " << sizes << ": " << all << "\n";
}

class OneDnnResNetTest : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(OneDnnResNetTest, MatchesTheLibTorchBody) {
  if (!OneDnnResNet::Available()) GTEST_SKIP() << "built without oneDNN";
  const auto& [name, dilation] = GetParam();
  auto reference = RandomBody(name, dilation);
  auto fast = RandomBody(name, dilation);
  reference->PrepareForInference(/*use_onednn=*/false);
  fast->PrepareForInference(/*use_onednn=*/true);
  torch::NoGradGuard no_grad;
  // Batch of three (run as chunks of 2 and 1), odd sizes; once NCHW and once
  // channels-last, as the backbone hands it over.
  auto images = at::randn({3, 3, 75, 94});
  ExpectNoReferenceCode(*fast, images.narrow(0, 0, 2).sizes());
  for (const auto& input : {images, images.contiguous(at::MemoryFormat::ChannelsLast)}) {
    auto expected = reference->forward(input);
    auto actual = fast->forward(input);
    ASSERT_EQ(actual.sizes(), expected.sizes());
    const double scale = expected.abs().max().item<double>();
    EXPECT_LE((actual - expected).abs().max().item<double>(), 1e-4 * scale) << "scale " << scale;
  }
}

INSTANTIATE_TEST_SUITE_P(Backbones, OneDnnResNetTest,
                         ::testing::Values(std::make_tuple("resnet18", false), std::make_tuple("resnet50", false),
                                           std::make_tuple("resnet50", true)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + (std::get<1>(info.param) ? "_dc5" : "");
                         });

// As a server with several workers runs it: one prepared body, passes on
// several threads at once, new shapes among them.
TEST(OneDnnResNetTest, ConcurrentPassesGiveTheSameResultsAsOneAtATime) {
  if (!OneDnnResNet::Available()) GTEST_SKIP() << "built without oneDNN";
  auto body = RandomBody("resnet18", false);
  body->PrepareForInference();
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> inputs = {at::randn({1, 3, 64, 80}), at::randn({2, 3, 64, 80}), at::randn({1, 3, 96, 64})};
  std::vector<at::Tensor> expected;
  for (const auto& input : inputs) expected.push_back(body->forward(input));
  std::vector<std::thread> threads;
  std::vector<double> errors(4 * inputs.size(), -1);
  for (std::size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      torch::NoGradGuard no_grad_here;
      for (int round = 0; round < 3; ++round) {
        for (std::size_t i = 0; i < inputs.size(); ++i) {
          errors[t * inputs.size() + i] = std::max(errors[t * inputs.size() + i],
                                                   (body->forward(inputs[i]) - expected[i]).abs().max().item<double>());
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (double error : errors) EXPECT_EQ(error, 0.0);
}

// More input shapes than plans are kept: evicted plans are rebuilt, and
// their weights in shape-specific layouts are made again.
TEST(OneDnnResNetTest, MoreShapesThanCachedPlansStayCorrect) {
  if (!OneDnnResNet::Available()) GTEST_SKIP() << "built without oneDNN";
  auto reference = RandomBody("resnet18", false);
  auto fast = RandomBody("resnet18", false);
  reference->PrepareForInference(/*use_onednn=*/false);
  fast->PrepareForInference();
  torch::NoGradGuard no_grad;
  for (int pass = 0; pass < 2; ++pass) {
    for (int64_t width = 40; width <= 90; width += 10) {
      const auto images = at::randn({1, 3, 48, width});
      const auto expected = reference->forward(images);
      const double scale = expected.abs().max().item<double>();
      EXPECT_LE((fast->forward(images) - expected).abs().max().item<double>(), 1e-4 * scale) << "width " << width;
    }
  }
}

// Where oneDNN offers only code the body refuses (here: everything, through
// the acceptance rule), the body keeps LibTorch's convolutions, says why,
// and still computes the same features.
TEST(OneDnnResNetTest, RefusedImplementationsLeaveTheLibTorchConvolutions) {
  if (!OneDnnResNet::Available()) GTEST_SKIP() << "built without oneDNN";
  auto reference = RandomBody("resnet18", false);
  auto body = RandomBody("resnet18", false);
  reference->PrepareForInference(/*use_onednn=*/false);
  std::vector<std::string> refused;
  OneDnnResNet::Options options;
  options.acceptable = [&](const std::string& implementation) {
    refused.push_back(implementation);
    return false;
  };
  body->PrepareForInference(true, std::move(options));
  EXPECT_EQ(body->onednn(), nullptr);
  EXPECT_FALSE(refused.empty());
  EXPECT_NE(body->engine().find("LibTorch convolutions"), std::string::npos) << body->engine();
  EXPECT_NE(body->engine().find("conv1 convolution"), std::string::npos) << body->engine();
  EXPECT_NE(body->engine().find(refused.front()), std::string::npos) << body->engine();
  torch::NoGradGuard no_grad;
  const auto images = at::randn({1, 3, 48, 64});
  EXPECT_TRUE(at::allclose(body->forward(images), reference->forward(images)));
}

// The reference implementation is what NotReference refuses, and only it.
TEST(OneDnnResNetTest, NotReferenceRefusesOnlyReferenceCode) {
  EXPECT_FALSE(OneDnnResNet::NotReference("ref:any"));
  EXPECT_FALSE(OneDnnResNet::NotReference("ref_fused_convolution:any"));
  EXPECT_TRUE(OneDnnResNet::NotReference("jit:avx2"));
  EXPECT_TRUE(OneDnnResNet::NotReference("jit_fp32_wino_2x3:avx512_core"));
  EXPECT_TRUE(OneDnnResNet::NotReference("brg:avx512_core"));
}

// Int8: ranges measured on some images, features of others within the
// quantisation error of the float32 body, on int8 JIT code only.
class OneDnnResNetInt8Test : public ::testing::TestWithParam<std::string> {};

TEST_P(OneDnnResNetInt8Test, StaysCloseToFloat32OnOtherImages) {
  if (!OneDnnResNet::Available()) GTEST_SKIP() << "built without oneDNN";
  auto float32 = RandomBody(GetParam(), false);
  auto int8 = RandomBody(GetParam(), false);
  float32->PrepareForInference();
  torch::NoGradGuard no_grad;
  at::manual_seed(11);
  const auto ranges = float32->onednn()->MeasureRanges(at::randn({4, 3, 64, 80}));
  const auto names = float32->onednn()->ActivationNames();
  ASSERT_EQ(ranges.size(), names.size());
  for (const auto& name : names) EXPECT_GT(ranges.count(name), 0u) << name;
  OneDnnResNet::Options options;
  options.int8 = ranges;
  int8->PrepareForInference(true, options);
  ASSERT_TRUE(int8->onednn()->int8());
  EXPECT_NE(int8->engine().find("int8"), std::string::npos) << int8->engine();
  ExpectNoReferenceCode(*int8, {1, 3, 64, 80});
  EXPECT_EQ(int8->onednn()->WeightsFingerprint(), float32->onednn()->WeightsFingerprint());
  const auto images = at::randn({2, 3, 64, 80});
  const auto expected = float32->forward(images);
  const auto actual = int8->forward(images);
  ASSERT_EQ(actual.sizes(), expected.sizes());
  const double relative = ((actual - expected).norm() / expected.norm()).item<double>();
  std::cout << GetParam() << " int8 against float32: relative error " << relative << "\n";
  EXPECT_LT(relative, 0.1);
  EXPECT_GT(relative, 0.0);  // it did run in int8
}

INSTANTIATE_TEST_SUITE_P(Backbones, OneDnnResNetInt8Test, ::testing::Values("resnet18", "resnet50"));

TEST(OneDnnResNetInt8Test, RangesThatMissOrAreNotPositiveAreRefusedByName) {
  if (!OneDnnResNet::Available()) GTEST_SKIP() << "built without oneDNN";
  auto float32 = RandomBody("resnet18", false);
  float32->PrepareForInference();
  torch::NoGradGuard no_grad;
  auto ranges = float32->onednn()->MeasureRanges(at::randn({1, 3, 64, 64}));
  const auto expect_refused = [](OneDnnResNet::ActivationRanges bad, const std::string& named) {
    auto body = RandomBody("resnet18", false);
    OneDnnResNet::Options options;
    options.int8 = std::move(bad);
    try {
      body->PrepareForInference(true, options);
      ADD_FAILURE() << "accepted ranges without " << named;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
    }
  };
  auto missing = ranges;
  missing.erase("layer2.0.downsample.0");
  expect_refused(missing, "layer2.0.downsample.0");
  auto negative = ranges;
  negative["layer3.1"] = -1.0f;
  expect_refused(negative, "layer3.1");
}

TEST(OneDnnResNetTest, GradientsStillFlowThroughTheLibTorchPath) {
  auto body = RandomBody("resnet18", false);
  body->PrepareForInference();
  auto images = at::randn({1, 3, 64, 64});
  images.set_requires_grad(true);
  body->forward(images).sum().backward();
  ASSERT_TRUE(images.grad().defined());
  EXPECT_GT(images.grad().abs().sum().item<double>(), 0.0);
}

}  // namespace
}  // namespace detr::core
