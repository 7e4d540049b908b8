// Preprocessing: the official resize rule, normalisation and batching, on
// real images encoded and decoded by OpenCV.
#include <filesystem>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "server/core/tensor_io.h"
#include "server/image/preprocess.h"

namespace detr {
namespace {

const std::string kFixture = std::string(DETR_FIXTURES_DIR) + "/detr-official-tiny";

// (3, H, W) float in [0, 1] -> 8-bit RGB Mat
cv::Mat ToRgbMat(const at::Tensor& image) {
  auto hwc = (image * 255).round().clamp(0, 255).to(at::kByte).permute({1, 2, 0}).contiguous();
  return cv::Mat(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_8UC3, hwc.data_ptr()).clone();
}

std::vector<unsigned char> EncodePng(const cv::Mat& rgb) {
  std::vector<unsigned char> bytes;
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  cv::imencode(".png", bgr, bytes);
  return bytes;
}

TEST(ResizedSizeTest, FollowsTheOfficialRule) {
  ResizePolicy policy;  // 800 / 1333
  EXPECT_EQ(ResizedSize(480, 640, policy), std::make_pair(800, 1066));
  EXPECT_EQ(ResizedSize(640, 480, policy), std::make_pair(1066, 800));
  EXPECT_EQ(ResizedSize(800, 1000, policy), std::make_pair(800, 1000));  // already there
  // Very wide: the longer side caps at 1333 (shorter side round(1333*200/1000) = 267).
  EXPECT_EQ(ResizedSize(200, 1000, policy), std::make_pair(267, 1335));
  EXPECT_EQ(ResizedSize(120, 160, ResizePolicy{0, 0}), std::make_pair(120, 160));
}

TEST(PreprocessTest, DecodedPngMatchesTheOfficialNormalisation) {
  if (!std::filesystem::exists(kFixture + "/io.safetensors")) GTEST_SKIP() << "fixture absent";
  auto io = LoadSafetensors(kFixture + "/io.safetensors");
  for (const std::string prefix : {"single0.", "single1."}) {
    auto rgb = DecodeImage(EncodePng(ToRgbMat(io.at(prefix + "image"))));
    auto input = ToModelInput(rgb, ResizePolicy{0, 0});
    auto expected = io.at(prefix + "pixel_values")[0];
    ASSERT_EQ(input.sizes(), expected.sizes());
    // 8-bit quantisation: at most half a grey level, divided by the smallest std.
    EXPECT_LE((input - expected).abs().max().item<double>(), 0.5 / 255 / 0.224 + 1e-5) << prefix;
  }
}

TEST(PreprocessTest, ResizesToThePolicy) {
  cv::Mat rgb(48, 64, CV_8UC3, cv::Scalar(10, 200, 30));
  auto input = ToModelInput(rgb, ResizePolicy{96, 1000});
  EXPECT_EQ(input.sizes(), (std::vector<int64_t>{3, 96, 128}));
  // A flat colour stays flat; channel 1 is green = 200.
  EXPECT_NEAR(input[1].mean().item<double>(), (200 / 255.0 - 0.456) / 0.224, 1e-4);
}

TEST(PreprocessTest, BatchPadsBottomRightAndMarksPadding) {
  auto a = at::ones({3, 4, 6}), b = at::ones({3, 5, 3}) * 2;
  auto [values, mask] = BatchInputs({a, b});
  EXPECT_EQ(values.sizes(), (std::vector<int64_t>{2, 3, 5, 6}));
  EXPECT_EQ(mask[0].sum().item<int64_t>(), 5 * 6 - 4 * 6);
  EXPECT_EQ(mask[1].sum().item<int64_t>(), 5 * 6 - 5 * 3);
  EXPECT_TRUE(mask[0][4].all().item<bool>());
  EXPECT_EQ(values[0][0][4][0].item<float>(), 0.0f);
  EXPECT_EQ(values[1][2][4][2].item<float>(), 2.0f);
}

TEST(PreprocessTest, CanvasHoldsTheNormalisedImageTopLeftAndZerosElsewhere) {
  cv::Mat rgb(30, 20, CV_8UC3);
  cv::randu(rgb, 0, 256);
  const auto expected = ToModelInput(rgb, ResizePolicy{0, 0});
  // Scale 1: a 30x20 image fits a 30x40 canvas as it is, padded on the right.
  auto [pixels, mask] = ToCanvasInput(rgb, 30, 40);
  ASSERT_EQ(pixels.sizes(), (std::vector<int64_t>{3, 30, 40}));
  EXPECT_TRUE(pixels.slice(2, 0, 20).equal(expected));
  EXPECT_EQ(pixels.slice(2, 20).abs().max().item<float>(), 0.0f);
  EXPECT_FALSE(mask.slice(1, 0, 20).any().item<bool>());
  EXPECT_TRUE(mask.slice(1, 20).all().item<bool>());
  // Scale 2: upscaled to 60x40, padded below.
  std::tie(pixels, mask) = ToCanvasInput(rgb, 70, 40);
  EXPECT_EQ(mask.sum().item<int64_t>(), 10 * 40);
  EXPECT_EQ(pixels.slice(1, 60).abs().max().item<float>(), 0.0f);
  EXPECT_GT(pixels.slice(1, 0, 60).abs().min().item<float>(), 0.0f);
}

TEST(PreprocessTest, PaddingMaskMarksEverythingOutsideTheImage) {
  auto mask = PaddingMask(5, 7, 3, 4);
  EXPECT_EQ(mask.sum().item<int64_t>(), 5 * 7 - 3 * 4);
  EXPECT_FALSE(mask.slice(0, 0, 3).slice(1, 0, 4).any().item<bool>());
  EXPECT_FALSE(PaddingMask(4, 4, 4, 4).any().item<bool>());
}

TEST(PreprocessTest, RejectsBytesThatAreNotAnImage) {
  EXPECT_THROW(DecodeImage({}), std::invalid_argument);
  std::vector<unsigned char> garbage(1000, 0x5a);
  EXPECT_THROW(DecodeImage(garbage), std::invalid_argument);
  cv::Mat rgb(32, 32, CV_8UC3, cv::Scalar(1, 2, 3));
  std::vector<unsigned char> jpeg;
  cv::imencode(".jpg", rgb, jpeg);
  jpeg.resize(jpeg.size() / 3);  // truncated: refused, not filled with grey
  EXPECT_THROW(DecodeImage(jpeg), std::invalid_argument);
}

}  // namespace
}  // namespace detr
