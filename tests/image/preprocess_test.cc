// Preprocessing: the official resize rule and normalisation into plain
// memory, on real images encoded and decoded by OpenCV; and the model core's
// view of the result as tensors, batched.
#include <filesystem>
#include <fstream>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "server/core/io/tensor_io.h"
#include "server/core/model/input_tensors.h"
#include "server/image/decode.h"
#include "server/image/preprocess.h"

namespace detr::image {
namespace {

const std::string kFixture = std::string(DETR_FIXTURES_DIR) + "/detr-official-tiny";

// (3, H, W) float in [0, 1] -> 8-bit RGB Mat
cv::Mat ToRgbMat(const at::Tensor& image) {
  auto hwc = (image * 255).round().clamp(0, 255).to(at::kByte).permute({1, 2, 0}).contiguous();
  return cv::Mat(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_8UC3, hwc.data_ptr()).clone();
}

// The prepared image's pixels as a (3, H, W) tensor (a copy) and its mask.
std::pair<at::Tensor, at::Tensor> Tensors(const core::PreparedImage& image) {
  auto [pixels, mask] = core::ImageTensors(image);
  return {pixels.clone(), mask.clone()};
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

// Found by the image fuzzer: a 1-pixel-high image rounded its short side to
// 0, and cv::resize threw. Past an aspect ratio of longest_edge : 0.5 it
// becomes 1 pixel by longest_edge; below that the official rule holds.
TEST(ResizedSizeTest, ExtremeAspectRatiosGetOnePixelByTheLongestEdge) {
  const ResizePolicy policy{64, 96};
  EXPECT_EQ(ResizedSize(1, 4000, policy), std::make_pair(1, 96));
  EXPECT_EQ(ResizedSize(4000, 1, policy), std::make_pair(96, 1));
  EXPECT_EQ(ResizedSize(1, 150, policy), std::make_pair(1, 150));  // round(96 / 150) = 1: official
  EXPECT_EQ(ResizedSize(1, 1, policy), std::make_pair(64, 64));
  cv::Mat thin(1, 4000, CV_8UC3, cv::Scalar(1, 2, 3));
  auto input = Tensors(Prepare(thin, policy)).first;
  EXPECT_EQ(input.sizes(), (std::vector<int64_t>{3, 1, 96}));
}

TEST(PreprocessTest, DecodedPngMatchesTheOfficialNormalisation) {
  if (!std::filesystem::exists(kFixture + "/io.safetensors")) GTEST_SKIP() << "fixture absent";
  auto io = core::LoadSafetensors(kFixture + "/io.safetensors");
  for (const std::string prefix : {"single0.", "single1."}) {
    auto rgb = DecodeImage(EncodePng(ToRgbMat(io.at(prefix + "image"))));
    ASSERT_TRUE(rgb.ok()) << rgb.status();
    auto input = Tensors(Prepare(*rgb, ResizePolicy{0, 0})).first;
    auto expected = io.at(prefix + "pixel_values")[0];
    ASSERT_EQ(input.sizes(), expected.sizes());
    // 8-bit quantisation: at most half a grey level, divided by the smallest std.
    EXPECT_LE((input - expected).abs().max().item<double>(), 0.5 / 255 / 0.224 + 1e-5) << prefix;
  }
}

TEST(PreprocessTest, ResizesToThePolicy) {
  cv::Mat rgb(48, 64, CV_8UC3, cv::Scalar(10, 200, 30));
  const auto prepared = Prepare(rgb, ResizePolicy{96, 1000});
  EXPECT_EQ(prepared.original_height, 48);
  EXPECT_EQ(prepared.original_width, 64);
  EXPECT_TRUE(prepared.padding.empty());
  auto input = Tensors(prepared).first;
  EXPECT_EQ(input.sizes(), (std::vector<int64_t>{3, 96, 128}));
  // A flat colour stays flat; channel 1 is green = 200.
  EXPECT_NEAR(input[1].mean().item<double>(), (200 / 255.0 - 0.456) / 0.224, 1e-4);
}

// core::BatchInputs pads differently sized inputs as the official
// nested_tensor_from_tensor_list does, keeping each image's own padding.
TEST(PreprocessTest, BatchPadsBottomRightAndMarksPadding) {
  cv::Mat small(4, 6, CV_8UC3, cv::Scalar(255, 255, 255)), tall(5, 3, CV_8UC3, cv::Scalar(0, 0, 0));
  const auto a = Prepare(small, ResizePolicy{0, 0}), b = PrepareOnCanvas(tall, 5, 4);
  auto [values, mask] = core::BatchInputs({&a, &b});
  EXPECT_EQ(values.sizes(), (std::vector<int64_t>{2, 3, 5, 6}));
  EXPECT_EQ(mask[0].sum().item<int64_t>(), 5 * 6 - 4 * 6);
  EXPECT_EQ(mask[1].sum().item<int64_t>(), 5 * 6 - 5 * 3);  // its canvas' column 3 is padding too
  EXPECT_TRUE(mask[0][4].all().item<bool>());
  EXPECT_EQ(values[0][0][4][0].item<float>(), 0.0f);
  EXPECT_NEAR(values[1][2][4][2].item<float>(), -0.406f / 0.225f, 1e-5);
  // A single image is a view of its own memory, not a copy.
  EXPECT_EQ(core::BatchInputs({&a}).first.data_ptr(), static_cast<const void*>(a.pixels.data()));
}

TEST(PreprocessTest, CanvasHoldsTheNormalisedImageTopLeftAndZerosElsewhere) {
  cv::Mat rgb(30, 20, CV_8UC3);
  cv::randu(rgb, 0, 256);
  const auto expected = Tensors(Prepare(rgb, ResizePolicy{0, 0})).first;
  // Scale 1: a 30x20 image fits a 30x40 canvas as it is, padded on the right.
  auto [pixels, mask] = Tensors(PrepareOnCanvas(rgb, 30, 40));
  ASSERT_EQ(pixels.sizes(), (std::vector<int64_t>{3, 30, 40}));
  EXPECT_TRUE(pixels.slice(2, 0, 20).equal(expected));
  EXPECT_EQ(pixels.slice(2, 20).abs().max().item<float>(), 0.0f);
  EXPECT_FALSE(mask.slice(1, 0, 20).any().item<bool>());
  EXPECT_TRUE(mask.slice(1, 20).all().item<bool>());
  // Scale 2: upscaled to 60x40, padded below.
  std::tie(pixels, mask) = Tensors(PrepareOnCanvas(rgb, 70, 40));
  EXPECT_EQ(mask.sum().item<int64_t>(), 10 * 40);
  EXPECT_EQ(pixels.slice(1, 60).abs().max().item<float>(), 0.0f);
  EXPECT_GT(pixels.slice(1, 0, 60).abs().min().item<float>(), 0.0f);
  // Exactly the canvas' size: no padding at all.
  const auto full = PrepareOnCanvas(rgb, 30, 20);
  EXPECT_TRUE(full.padding.empty());
  EXPECT_FALSE(Tensors(full).second.any().item<bool>());
}

// DETR-R50's canvases at the official 800/1333 rule: square, 4:3 and wide,
// each way round.
const std::vector<Canvas> kR50Canvases = {{800, 800}, {800, 1088}, {1088, 800}, {800, 1344}, {1344, 800}};
const ResizePolicy kOfficial{800, 1333};

TEST(PreprocessTest, CanvasesPadTheOfficialSizeIntoTheSmallestCanvasThatHoldsIt) {
  cv::Mat rgb(480, 640, CV_8UC3);
  cv::randu(rgb, 0, 256);
  const auto unpadded = Tensors(Prepare(rgb, kOfficial)).first;  // 800 x 1066
  const auto padded = PrepareOnCanvases(rgb, kOfficial, kR50Canvases);
  ASSERT_EQ(padded.height, 800);
  ASSERT_EQ(padded.width, 1088);  // not 1344: the smallest that holds it
  EXPECT_EQ(padded.original_height, 480);
  EXPECT_EQ(padded.original_width, 640);
  auto [pixels, mask] = Tensors(padded);
  EXPECT_TRUE(pixels.slice(2, 0, 1066).equal(unpadded));
  EXPECT_EQ(pixels.slice(2, 1066).abs().max().item<float>(), 0.0f);
  EXPECT_FALSE(mask.slice(1, 0, 1066).any().item<bool>());
  EXPECT_TRUE(mask.slice(1, 1066).all().item<bool>());

  // The same photograph upright, a 16:9 one and a square one.
  const auto shape = [&](int height, int width) {
    const auto image = PrepareOnCanvases(cv::Mat(height, width, CV_8UC3, cv::Scalar(9, 9, 9)), kOfficial, kR50Canvases);
    return std::make_pair(image.height, image.width);
  };
  EXPECT_EQ(shape(640, 480), std::make_pair(1088, 800));
  EXPECT_EQ(shape(450, 800), std::make_pair(800, 1344));  // 750 x 1333
  EXPECT_EQ(shape(500, 500), std::make_pair(800, 800));
  // Exactly a canvas's size: no padding.
  EXPECT_TRUE(
      PrepareOnCanvases(cv::Mat(800, 800, CV_8UC3, cv::Scalar(1, 2, 3)), kOfficial, kR50Canvases).padding.empty());
}

TEST(PreprocessTest, CanvasesFitAnImageTheRuleMakesTooLongWithoutCropping) {
  // 10 x 2000: the rule's rounding makes it 7 x 1400, wider than every
  // canvas; it is fitted into the widest (7 x 1344), none of it cut off.
  ASSERT_EQ(ResizedSize(10, 2000, kOfficial), std::make_pair(7, 1400));
  const auto image = PrepareOnCanvases(cv::Mat(10, 2000, CV_8UC3, cv::Scalar(200, 100, 50)), kOfficial, kR50Canvases);
  EXPECT_EQ(image.height, 800);
  EXPECT_EQ(image.width, 1344);
  const auto mask = Tensors(image).second;
  EXPECT_FALSE(mask[0].any().item<bool>());  // the first row is all image
  EXPECT_EQ(mask.logical_not().sum().item<int64_t>(), 7 * 1344);
}

TEST(PreprocessTest, CanvasesThatMissASizeOfTheRuleAreNamed) {
  EXPECT_FALSE(CanvasesMissFor(kOfficial, kR50Canvases).has_value());
  const auto no_tall = CanvasesMissFor(kOfficial, {{800, 800}, {800, 1344}});
  ASSERT_TRUE(no_tall.has_value());
  EXPECT_NE(no_tall->find("[1333, 800]"), std::string::npos) << *no_tall;
  const auto short_of_wide = CanvasesMissFor(kOfficial, {{800, 1088}, {1344, 800}});
  ASSERT_TRUE(short_of_wide.has_value());
  EXPECT_NE(short_of_wide->find("[800, 1333]"), std::string::npos) << *short_of_wide;
  EXPECT_TRUE(CanvasesMissFor(ResizePolicy{800, 0}, kR50Canvases).has_value());  // no largest size
}

TEST(PreprocessTest, RejectsBytesThatAreNotAnImage) {
  EXPECT_EQ(DecodeImage({}).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<unsigned char> garbage(1000, 0x5a);
  EXPECT_EQ(DecodeImage(garbage).status().code(), absl::StatusCode::kInvalidArgument);
  cv::Mat rgb(32, 32, CV_8UC3, cv::Scalar(1, 2, 3));
  std::vector<unsigned char> jpeg;
  cv::imencode(".jpg", rgb, jpeg);
  jpeg.resize(jpeg.size() / 3);  // truncated: refused, not filled with grey
  const auto truncated = DecodeImage(jpeg);
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(truncated.status().message().find("truncated"), absl::string_view::npos) << truncated.status();
}

TEST(PreprocessTest, ReadImageNamesTheFileItCannotReadOrDecode) {
  const auto missing = ReadImage("/nonexistent/image.png");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/image.png"), absl::string_view::npos);
  const std::string path = ::testing::TempDir() + "/not-an-image.png";
  std::ofstream(path) << "plain text";
  const auto garbage = ReadImage(path);
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(garbage.status().message().find(path), absl::string_view::npos) << garbage.status();
}

}  // namespace
}  // namespace detr::image
