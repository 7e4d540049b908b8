// Parity with the official DETR implementation on the tiny fixture
// (../shared/fixtures/detr-official-tiny): raw outputs and post-processing,
// with weights from safetensors and from the converted legacy .pth, with and
// without the inference optimisations.
#include <filesystem>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include "server/core/io/checkpoint.h"
#include "server/core/model/detr.h"
#include "server/core/model/postprocess.h"
#include "server/core/runtime/runtime.h"
#include "server/core/io/tensor_io.h"

namespace detr::core {
namespace {

const std::string kFixture = std::string(DETR_FIXTURES_DIR) + "/detr-official-tiny";
constexpr double kTolerance = 1e-4;

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

struct ParityCase {
  std::string weights;  // "safetensors" or "converted"
  bool optimized;
};

void PrintTo(const ParityCase& c, std::ostream* os) { *os << c.weights << (c.optimized ? " optimized" : " plain"); }

class OfficialParityTest : public ::testing::TestWithParam<ParityCase> {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kFixture + "/io.safetensors")) {
      GTEST_SKIP() << "fixture " << kFixture << " is absent";
    }
    ConfigureThreads(0);
    const auto& param = GetParam();
    const std::string weights =
        param.weights == "converted" ? std::string(DETR_CONVERTED_CHECKPOINT) : kFixture + "/weights.safetensors";
    model_ = Detr(ModelConfig::FromJsonFile(kFixture + "/config.json"));
    LoadWeightsFile(*model_, weights);
    model_->eval();
    if (param.optimized) model_->PrepareForInference();
    io_ = LoadSafetensors(kFixture + "/io.safetensors");
  }

  DetrOutput Run(const std::string& prefix) {
    torch::NoGradGuard no_grad;
    return model_->forward(io_.at(prefix + "pixel_values"), io_.at(prefix + "pixel_mask"));
  }

  Detr model_{nullptr};
  TensorMap io_;
};

TEST_P(OfficialParityTest, RawOutputsMatchForEachInput) {
  for (const std::string prefix : {"single0.", "single1.", "batch."}) {
    auto out = Run(prefix);
    EXPECT_LE(MaxAbsDiff(out.logits, io_.at(prefix + "pred_logits")), kTolerance) << prefix;
    EXPECT_LE(MaxAbsDiff(out.boxes, io_.at(prefix + "pred_boxes")), kTolerance) << prefix;
  }
}

TEST_P(OfficialParityTest, PostProcessingMatches) {
  for (const std::string prefix : {"single0.", "single1."}) {
    auto out = Run(prefix);
    const auto& image = io_.at(prefix + "image");
    auto sizes = at::tensor({image.size(1), image.size(2)}, at::kLong).view({1, 2});
    auto post = PostProcess(out.logits, out.boxes, sizes);
    EXPECT_LE(MaxAbsDiff(post.scores[0], io_.at(prefix + "scores")), kTolerance) << prefix;
    EXPECT_TRUE(post.labels[0].equal(io_.at(prefix + "labels"))) << prefix;
    // Boxes are in pixels (up to 200): the same relative tolerance.
    EXPECT_LE(MaxAbsDiff(post.boxes[0], io_.at(prefix + "boxes_xyxy")), kTolerance * 200) << prefix;
  }
}

INSTANTIATE_TEST_SUITE_P(Weights, OfficialParityTest,
                         ::testing::Values(ParityCase{"safetensors", false}, ParityCase{"safetensors", true},
                                           ParityCase{"converted", false}, ParityCase{"converted", true}),
                         [](const auto& info) {
                           return info.param.weights + (info.param.optimized ? "_optimized" : "_plain");
                         });

}  // namespace
}  // namespace detr::core
