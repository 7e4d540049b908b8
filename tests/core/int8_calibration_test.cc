// Int8 calibration files: read and written, refused (naming the file) when
// missing, truncated, not a calibration, of other weights or of another
// architecture; and a shipped calibration building an int8 default model
// whose outputs stay close to float32's.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include "server/core/io/int8_calibration.h"
#include "server/core/model/model_factory.h"

namespace detr::core {
namespace {

const std::string kModels = std::string(DETR_SOURCE_DIR) + "/deploy/models/";

std::string Temp(const std::string& name) { return (std::filesystem::temp_directory_path() / name).string(); }

void WriteText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

ModelSpec DefaultSoftmax(const std::string& calibration = "") {
  ModelSpec spec{ModelConfig::FromJsonFile(kModels + "default-softmax.json"), kModels + "default-softmax.safetensors"};
  spec.int8_calibration = calibration;
  return spec;
}

// `load` fails with a CalibrationError whose message names `path` and says `why`.
template <typename F>
void ExpectRefused(F load, const std::string& path, const std::string& why) {
  try {
    load();
    ADD_FAILURE() << "accepted " << path;
  } catch (const CalibrationError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
}

TEST(Int8CalibrationTest, WrittenFilesReadBack) {
  Int8Calibration calibration;
  calibration.weights_fingerprint = "0123456789abcdef";
  calibration.images = 3;
  calibration.source = "test";
  calibration.ranges = {{"maxpool", 1.5f}, {"layer1.0", 2.25f}};
  const auto path = Temp("detr-int8-roundtrip.json");
  WriteInt8Calibration(path, calibration);
  const auto read = ReadInt8Calibration(path);
  EXPECT_EQ(read.weights_fingerprint, calibration.weights_fingerprint);
  EXPECT_EQ(read.images, 3);
  EXPECT_EQ(read.ranges, calibration.ranges);
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
}

TEST(Int8CalibrationTest, BadFilesAreRefusedNamingTheFile) {
  const std::string good = ReadText(kModels + "default-softmax.int8.json");
  ASSERT_GT(good.size(), 200u);
  const auto missing = Temp("detr-int8-absent.json");
  std::filesystem::remove(missing);
  ExpectRefused([&] { ReadInt8Calibration(missing); }, missing, "cannot be read");
  const auto truncated = Temp("detr-int8-truncated.json");
  WriteText(truncated, good.substr(0, good.size() / 2));
  ExpectRefused([&] { ReadInt8Calibration(truncated); }, truncated, "truncated");
  const auto other = Temp("detr-int8-other.json");
  WriteText(other, R"({"weights": "x"})");
  ExpectRefused([&] { ReadInt8Calibration(other); }, other, "not an int8 calibration");
  const auto negative = Temp("detr-int8-negative.json");
  auto text = good;
  text.insert(text.find("\"maxpool\": ") + 11, "-");
  WriteText(negative, text);
  ExpectRefused([&] { ReadInt8Calibration(negative); }, negative, "maxpool");
}

// A calibration of other weights, or one missing an activation, never
// gives a model: BuildModel refuses it, naming the file.
TEST(Int8CalibrationTest, CalibrationsThatDoNotFitTheModelAreRefused) {
  auto calibration = ReadInt8Calibration(kModels + "default-softmax.int8.json");
  const auto other_weights = Temp("detr-int8-other-weights.json");
  auto changed = calibration;
  changed.weights_fingerprint = "0000000000000000";
  WriteInt8Calibration(other_weights, changed);
  ExpectRefused([&] { BuildModel(DefaultSoftmax(other_weights)); }, other_weights, "other weights");
  auto seeded = DefaultSoftmax(kModels + "default-softmax.int8.json");
  seeded.weights_path.clear();  // seeded random weights: not the calibrated ones
  ExpectRefused([&] { BuildModel(seeded); }, kModels + "default-softmax.int8.json", "other weights");
  const auto incomplete = Temp("detr-int8-incomplete.json");
  changed = calibration;
  changed.ranges.erase("layer3.0.downsample.0");
  WriteInt8Calibration(incomplete, changed);
  ExpectRefused([&] { BuildModel(DefaultSoftmax(incomplete)); }, incomplete, "layer3.0.downsample.0");
}

TEST(Int8CalibrationTest, ShippedCalibrationGivesAnInt8ModelCloseToFloat32) {
  auto float32 = BuildModel(DefaultSoftmax());
  auto int8 = BuildModel(DefaultSoftmax(kModels + "default-softmax.int8.json"));
  ASSERT_NE(int8.model->onednn_backbone(), nullptr);
  EXPECT_TRUE(int8.model->onednn_backbone()->int8());
  EXPECT_FALSE(float32.model->onednn_backbone()->int8());
  EXPECT_NE(int8.model->backbone_engine().find("int8"), std::string::npos) << int8.model->backbone_engine();
  EXPECT_EQ(int8.model->backbone_engine().find(" ref"), std::string::npos) << int8.model->backbone_engine();
  torch::NoGradGuard no_grad;
  at::manual_seed(3);
  const auto pixels = at::randn({2, 3, 128, 160});
  const auto mask = at::zeros({2, 128, 160}, at::kBool);
  const auto expected = float32.model->forward(pixels, mask);
  const auto actual = int8.model->forward(pixels, mask);
  const double box_error = (actual.boxes - expected.boxes).abs().max().item<double>();
  const double probability_error = (actual.logits.softmax(-1) - expected.logits.softmax(-1)).abs().max().item<double>();
  std::printf("int8 against float32: boxes %.4f, class probabilities %.4f at most\n", box_error, probability_error);
  EXPECT_GT(box_error, 0.0);  // it did run in int8
  EXPECT_LT(box_error, 0.05);
  EXPECT_LT(probability_error, 0.1);
}

}  // namespace
}  // namespace detr::core
