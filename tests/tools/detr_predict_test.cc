// The detr-predict binary end to end: raw mode against the official outputs,
// image mode on a real PNG, and clear errors for bad input.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "server/core/io/tensor_io.h"
#include "server/core/kernels/optimization_attention_kernel.h"
#include "server/core/runtime/runtime.h"

namespace detr::core {
namespace {

const std::string kFixture = std::string(DETR_FIXTURES_DIR) + "/detr-official-tiny";
// One folder per process: CTest runs the ISA variants of a test at the same
// time, and they wrote the same files (seen: ImageModeWritesJsonAndAPicture
// failed once under ctest -j2, and passed alone).
const std::string kOut = std::string(DETR_TEST_OUTPUT_DIR) + "/pid-" + std::to_string(getpid());

struct Result {
  int exit_code;
  std::string output;  // stdout and stderr
};

Result RunPredict(const std::string& arguments) {
  const std::string command = std::string(DETR_PREDICT_BINARY) + " " + arguments + " 2>&1";
  Result result{-1, ""};
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

class DetrPredictTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kFixture + "/io.safetensors")) GTEST_SKIP() << "fixture absent";
    std::filesystem::create_directories(kOut);
  }
  std::string Model() const {
    return "--model-config " + kFixture + "/config.json --weights " + kFixture + "/weights.safetensors";
  }
};

TEST_F(DetrPredictTest, RawModeMatchesTheOfficialOutputs) {
  for (const std::string prefix : {"single0.", "single1.", "batch."}) {
    const auto out = kOut + "/raw-" + prefix + "safetensors";
    auto result = RunPredict(Model() + " --raw-input " + kFixture + "/io.safetensors --input-prefix " + prefix +
                             " --raw-output " + out);
    ASSERT_EQ(result.exit_code, 0) << result.output;
    auto got = LoadSafetensors(out);
    auto expected = LoadSafetensors(kFixture + "/io.safetensors");
    EXPECT_LE((got.at("pred_logits") - expected.at(prefix + "pred_logits")).abs().max().item<double>(), 1e-4);
    EXPECT_LE((got.at("pred_boxes") - expected.at(prefix + "pred_boxes")).abs().max().item<double>(), 1e-4);
  }
}

// UseFastBlasKernels: on a CPU with AVX2, whatever OpenBLAS made of its model
// at load, detr-predict's matrix products run on kernels that use AVX2 or
// better, not on one of OpenBLAS's fallbacks for models it does not know
// (its SSE3 "Prescott" on this machine's Xeon, model 207).
TEST_F(DetrPredictTest, RunsOpenBlasKernelsThatUseTheVectorUnits) {
  const auto result =
      RunPredict(Model() + " --raw-input " + kFixture + "/io.safetensors --input-prefix single0. --raw-output " + kOut +
                 "/raw-blas.safetensors");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const std::string openblas = ", OpenBLAS ";  // RuntimeSummary()'s words before the core's name
  const auto at = result.output.find(openblas);
  if (at == std::string::npos) GTEST_SKIP() << "the BLAS is not OpenBLAS";
  if (optimization_kernel::BestIsa() < optimization_kernel::Isa::kAvx2 || std::getenv("OPENBLAS_CORETYPE") != nullptr) {
    GTEST_SKIP() << "no AVX2 (or capped below it), or the kernels are chosen by hand: nothing to choose";
  }
  std::istringstream rest(result.output.substr(at + openblas.size()));
  std::string core;
  rest >> core;
  EXPECT_EQ(BlasCoreTypeToRequest(core, true, true), "") << "still a fallback core: " << result.output;
}

TEST_F(DetrPredictTest, ImageModeWritesJsonAndAPicture) {
  // The fixture's first image as a PNG, at its own size (no resize).
  auto image = LoadSafetensors(kFixture + "/io.safetensors").at("single0.image");
  auto hwc = (image * 255).round().to(at::kByte).permute({1, 2, 0}).flip(2).contiguous();  // RGB -> BGR
  cv::Mat bgr(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_8UC3, hwc.data_ptr());
  const auto png = kOut + "/single0.png", json_path = kOut + "/single0.json", drawn = kOut + "/single0-drawn.png";
  ASSERT_TRUE(cv::imwrite(png, bgr));
  std::filesystem::remove(drawn);

  auto result = RunPredict(Model() + " --image " + png + " --min-size 120 --threshold 0 --json " + json_path +
                           " --draw " + drawn);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::ifstream in(json_path);
  auto json = nlohmann::json::parse(in);
  EXPECT_EQ(json["width"], 160);
  EXPECT_EQ(json["height"], 120);
  ASSERT_EQ(json["detections"].size(), 10u);  // threshold 0: every query

  // Scores are the official ones up to the PNG's 8-bit quantisation.
  auto expected = LoadSafetensors(kFixture + "/io.safetensors").at("single0.scores");
  auto sorted = std::get<0>(expected.sort(0, /*descending=*/true));
  for (size_t i = 0; i < 10; ++i) {
    const auto& d = json["detections"][i];
    EXPECT_NEAR(d["score"].get<double>(), sorted[i].item<double>(), 5e-3) << i;
    EXPECT_FALSE(d["class_name"].get<std::string>().empty());
    EXPECT_EQ(d["box"].size(), 4u);
  }
  auto picture = cv::imread(drawn);
  ASSERT_FALSE(picture.empty());
  EXPECT_EQ(picture.cols, 160);
  EXPECT_GT(cv::norm(picture, bgr, cv::NORM_L1), 0.0) << "nothing was drawn";
}

TEST_F(DetrPredictTest, BadInputGivesAClearErrorAndNonZeroExit) {
  const auto garbage = kOut + "/garbage.png";
  std::ofstream(garbage) << "definitely not a PNG";
  auto result = RunPredict(Model() + " --image " + garbage);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("cannot be decoded"), std::string::npos) << result.output;

  result = RunPredict("--model-config " + kFixture + "/config.json --weights " + kFixture + "/io.safetensors --image " +
                      garbage);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("missing key 'backbone.0.body.conv1.weight'"), std::string::npos) << result.output;

  // A LibTorch error reaches the user without a C++ backtrace.
  const auto wrong_input = kOut + "/wrong-input.safetensors";
  SaveSafetensors(wrong_input,
                  {{"pixel_values", at::zeros({1, 2, 8, 8})}, {"pixel_mask", at::zeros({1, 8, 8}, at::kBool)}});
  result = RunPredict(Model() + " --raw-input " + wrong_input + " --raw-output " + kOut + "/never.safetensors");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("pixel_values must be (B, 3, H, W)"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("frame #"), std::string::npos) << result.output;

  result = RunPredict(Model());
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.output.find("give --image or --raw-input"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace detr::core
