// Non-square training data (issue 16): detr-data draws images of several
// sizes or pads them onto a larger canvas, the data set batches images of
// different sizes with a padding mask, and the official random resize gives
// each image its drawn shortest edge without moving its boxes.
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <sys/wait.h>
#include <utility>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "server/training/detection_dataset.h"

namespace detr::training {
namespace {

const std::string kOut = DETR_TEST_OUTPUT_DIR;

int RunQuietly(const std::string& command) {
  const int status = std::system((command + " > /dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

nlohmann::json ReadJson(const std::string& path) { return nlohmann::json::parse(std::ifstream(path)); }

// Draws a fresh synthetic data set into kOut/NAME with detr-data's ARGUMENTS;
// returns its folder, or "" when detr-data failed.
std::string DrawShapes(const std::string& name, const std::string& arguments) {
  const std::string dir = kOut + "/" + name;
  std::filesystem::remove_all(dir);
  return RunQuietly(std::string(DETR_DATA_BINARY) + " --output " + dir + " " + arguments) == 0 ? dir : "";
}

// The unpadded extent (rows, columns) of image b of a batch's mask.
std::pair<int64_t, int64_t> Extent(const at::Tensor& mask, int64_t b) {
  const auto real = mask[b].logical_not();
  return {real.any(1).sum().item<int64_t>(), real.any(0).sum().item<int64_t>()};
}

TEST(NonSquareDataTest, MixedSizesBatchWithAMaskAndRandomResizeKeepsBoxes) {
  const std::string data =
      DrawShapes("mixed-shapes", "--seed 3 --train 12 --val 0 --sizes 96x64,64x96 --min-extent 8 --max-extent 30");
  ASSERT_FALSE(data.empty());
  const auto coco = ReadJson(data + "/train.json");
  std::set<std::pair<int, int>> sizes;
  for (const auto& image : coco["images"]) sizes.insert({image["width"].get<int>(), image["height"].get<int>()});
  EXPECT_EQ(sizes, (std::set<std::pair<int, int>>{{96, 64}, {64, 96}}));

  const DetectionDataset dataset(data + "/train.json", data + "/train");
  std::vector<int64_t> all(12);
  for (int64_t i = 0; i < 12; ++i) all[static_cast<size_t>(i)] = i;
  at::Tensor pixels, mask;
  std::vector<Target> targets, resized_targets;
  dataset.Batch(all, pixels, mask, targets);
  EXPECT_EQ(pixels.sizes(), (at::IntArrayRef{12, 3, 96, 96}));
  for (int64_t b = 0; b < 12; ++b) {
    const auto& image = coco["images"][static_cast<size_t>(b)];
    EXPECT_EQ(Extent(mask, b), std::make_pair(image["height"].get<int64_t>(), image["width"].get<int64_t>()));
    EXPECT_EQ(pixels[b].masked_select(mask[b].unsqueeze(0).expand({3, -1, -1})).abs().max().item<float>(), 0.0f)
        << "padding is zeros, as the server pads";
  }

  // Shortest edge 48 or 40, longest at most 66: 96 x 64 becomes 66 x 44 or 60 x 40,
  // one scale for the whole batch.
  std::mt19937_64 rng(1);
  std::set<int64_t> shortest;
  for (int draw = 0; draw < 8; ++draw) {
    dataset.Batch(all, pixels, mask, resized_targets, RandomResize{{48, 40}, 66}, &rng);
    std::set<int64_t> in_batch;
    for (int64_t b = 0; b < 12; ++b) {
      const auto [rows, cols] = Extent(mask, b);
      in_batch.insert(std::min(rows, cols));
      EXPECT_LE(std::max(rows, cols), 66);
      EXPECT_NEAR(static_cast<double>(std::max(rows, cols)) / static_cast<double>(std::min(rows, cols)), 1.5, 0.03);
      EXPECT_TRUE(resized_targets[static_cast<size_t>(b)].boxes.equal(targets[static_cast<size_t>(b)].boxes))
          << "boxes are normalised by the image's own size";
    }
    EXPECT_EQ(in_batch.size(), 1u) << "one scale per batch";
    shortest.insert(in_batch.begin(), in_batch.end());
  }
  EXPECT_EQ(shortest, (std::set<int64_t>{40, 44})) << "both scales drawn (48 capped to 44 by the longest edge)";
}

// The trainer's batches: every image of a batch has one size, so with the
// batch's random resize nothing is padded (padding would enter the batch
// norms' statistics), and over many batches every size is drawn.
TEST(NonSquareDataTest, SampledBatchesHaveOneSizeAndNoPadding) {
  const std::string data = DrawShapes(
      "grouped-shapes", "--seed 5 --train 16 --val 0 --sizes 96x64,64x96,80x80 --min-extent 8 --max-extent 30");
  ASSERT_FALSE(data.empty());
  const DetectionDataset dataset(data + "/train.json", data + "/train");
  const auto groups = dataset.SizeGroups();
  ASSERT_EQ(groups.size(), 3u);
  BatchSampler sampler(groups);
  std::mt19937_64 rng(2);
  std::set<std::pair<int64_t, int64_t>> sizes;
  for (int step = 0; step < 30; ++step) {
    const auto batch = sampler.Next(4, rng);
    ASSERT_EQ(batch.size(), 4u);
    at::Tensor pixels, mask;
    std::vector<Target> targets;
    dataset.Batch(batch, pixels, mask, targets, RandomResize{{48, 56}, 80}, &rng);
    EXPECT_FALSE(mask.any().item<bool>()) << "a padded batch at step " << step;
    sizes.insert({pixels.size(2), pixels.size(3)});
  }
  EXPECT_GE(sizes.size(), 4u) << "three image sizes, two scales: most combinations drawn";
}

// detr-train takes the random resize and crop from its command line and
// trains on mixed sizes.
TEST(NonSquareDataTest, TrainerRandomResizesMixedSizes) {
  const std::string out = kOut + "/mixed-train-out";
  std::filesystem::remove_all(out);
  const std::string data =
      DrawShapes("mixed-train", "--seed 4 --train 8 --val 0 --sizes 96x64,64x96 --min-extent 8 --max-extent 30");
  ASSERT_FALSE(data.empty());
  std::ofstream(kOut + "/mixed-tiny.json") << R"({"backbone": "resnet18", "hidden_dim": 32, "nheads": 2,
    "enc_layers": 1, "dec_layers": 1, "dim_feedforward": 64, "num_queries": 8, "num_classes": 4})";
  const std::string train = std::string(DETR_TRAIN_BINARY) + " --model-config " + kOut + "/mixed-tiny.json" +
                            " --annotations " + data + "/train.json --images " + data + "/train --output " + out +
                            " --batch-size 4 --steps 3 --threads 2 --scales 48,64 --max-size 96";
  EXPECT_EQ(RunQuietly(train), 0);
  EXPECT_TRUE(std::filesystem::exists(out + "/model.safetensors"));
  EXPECT_NE(RunQuietly(train + " --scales 8"), 0) << "a scale below 16 px is refused";
  std::filesystem::remove_all(out);
  EXPECT_EQ(RunQuietly(train + " --crop-scales 32,40 --crop-size 20,40 --crop-probability 1"), 0);
  EXPECT_TRUE(std::filesystem::exists(out + "/model.safetensors")) << "trains on random crops";
  EXPECT_NE(RunQuietly(train + " --crop-scales 32"), 0) << "a crop needs its region's size";
  EXPECT_NE(RunQuietly(train + " --crop-scales 32 --crop-size 40,20"), 0) << "MIN above MAX is refused";
}

TEST(NonSquareDataTest, PaddedSetHoldsTheSameContentAtAKnownOffset) {
  const std::string common = "--seed 5 --train 0 --val 6 --size 96";
  const std::string square = DrawShapes("square-shapes", common);
  const std::string padded = DrawShapes("padded-shapes", common + " --pad-to 160x112");
  ASSERT_FALSE(square.empty() || padded.empty());
  const auto a = ReadJson(square + "/val.json"), b = ReadJson(padded + "/val.json");
  ASSERT_EQ(a["annotations"].size(), b["annotations"].size());
  std::set<std::pair<int, int>> offsets;
  for (size_t i = 0; i < a["images"].size(); ++i) {
    EXPECT_EQ(b["images"][i]["width"], 160);
    EXPECT_EQ(b["images"][i]["height"], 112);
    // Every box of an image moves by the same offset: the image's.
    int dx = -1, dy = -1;
    for (size_t k = 0; k < a["annotations"].size(); ++k) {
      if (a["annotations"][k]["image_id"] != a["images"][i]["id"]) continue;
      const auto &box = a["annotations"][k]["bbox"], &moved = b["annotations"][k]["bbox"];
      EXPECT_EQ(a["annotations"][k]["category_id"], b["annotations"][k]["category_id"]);
      if (dx < 0) dx = moved[0].get<int>() - box[0].get<int>(), dy = moved[1].get<int>() - box[1].get<int>();
      EXPECT_EQ(moved[0].get<int>() - box[0].get<int>(), dx);
      EXPECT_EQ(moved[1].get<int>() - box[1].get<int>(), dy);
      EXPECT_EQ(moved[2], box[2]);
    }
    if (dx < 0) continue;
    offsets.insert({dx, dy});
    const auto file = a["images"][i]["file_name"].get<std::string>();
    const cv::Mat original = cv::imread(square + "/val/" + file), canvas = cv::imread(padded + "/val/" + file);
    ASSERT_FALSE(original.empty() || canvas.empty());
    EXPECT_EQ(cv::norm(canvas(cv::Rect(dx, dy, 96, 96)), original, cv::NORM_INF), 0.0) << file << " unchanged";
  }
  EXPECT_GT(offsets.size(), 1u) << "offsets are drawn per image";
}

// One 96 x 64 image, black, with a white rectangle at x 70..90, y 48..60
// (COCO bbox [70, 48, 20, 12], category 1; near a corner, so that some
// regions miss it), as a COCO set in kOut/NAME.
std::string WriteOneRectangleSet(const std::string& name) {
  const std::string dir = kOut + "/" + name;
  std::filesystem::create_directories(dir + "/images");
  cv::Mat image(64, 96, CV_8UC3, cv::Scalar::all(0));
  image(cv::Rect(70, 48, 20, 12)).setTo(cv::Scalar::all(255));
  cv::imwrite(dir + "/images/rectangle.png", image);
  std::ofstream(dir + "/train.json")
      << R"({"images": [{"id": 1, "file_name": "rectangle.png", "width": 96, "height": 64}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [70, 48, 20, 12], "area": 240, "iscrowd": 0}],
    "categories": [{"id": 1, "name": "rectangle"}]})";
  return dir;
}

// The bright pixels' extent in image b of a batch, in pixels: x0, y0, x1, y1
// (all -1 when there are none).
std::array<int64_t, 4> BrightExtent(const at::Tensor& pixels, int64_t b) {
  const auto bright = pixels[b][0] > 0;  // normalised: white ~ +2.2, black ~ -2.1
  if (!bright.any().item<bool>()) return {-1, -1, -1, -1};
  const auto columns = bright.any(0).nonzero(), rows = bright.any(1).nonzero();
  return {columns.min().item<int64_t>(), rows.min().item<int64_t>(), columns.max().item<int64_t>() + 1,
          rows.max().item<int64_t>() + 1};
}

// The official random crop: regions within the drawn bounds, one size per
// batch and one place per image, and every kept box where its pixels went.
TEST(RandomSizeCropTest, BoxesFollowThePixelsIntoTheRegion) {
  const std::string dir = WriteOneRectangleSet("one-rectangle");
  const DetectionDataset dataset(dir + "/train.json", dir + "/images");
  // Intermediate shortest edge 32 (half of 64): regions of 20..40 by 20..32
  // intermediate pixels, 40..80 by 40..64 of the image's own.
  const RandomSizeCrop crop{1.0, {32}, 20, 40};
  std::mt19937_64 rng(6);
  std::set<int64_t> widths;
  int kept = 0, dropped = 0, distinct_places = 0;
  for (int draw = 0; draw < 40; ++draw) {
    at::Tensor pixels, mask;
    std::vector<Target> targets;
    dataset.Batch({0, 0, 0}, pixels, mask, targets, {}, &rng, crop);
    ASSERT_EQ(pixels.size(0), 3);
    EXPECT_FALSE(mask.any().item<bool>()) << "one region size per batch: nothing padded";
    const int64_t height = pixels.size(2), width = pixels.size(3);
    EXPECT_GE(width, 40);
    EXPECT_LE(width, 80);
    EXPECT_GE(height, 40);
    EXPECT_LE(height, 64);
    widths.insert(width);
    for (int64_t b = 0; b < 3; ++b) {
      const auto& target = targets[static_cast<size_t>(b)];
      const auto extent = BrightExtent(pixels, b);
      if (target.labels.numel() == 0) {
        ++dropped;
        EXPECT_EQ(extent[0], -1) << "a dropped box left no rectangle in the region";
        continue;
      }
      ++kept;
      ASSERT_EQ(target.labels.numel(), 1);
      EXPECT_EQ(target.labels[0].item<int64_t>(), 1);
      const auto box = target.boxes[0];
      const double cx = box[0].item<double>() * width, cy = box[1].item<double>() * height;
      const double w = box[2].item<double>() * width, h = box[3].item<double>() * height;
      EXPECT_NEAR(cx - w / 2, extent[0], 1e-3) << "draw " << draw;
      EXPECT_NEAR(cy - h / 2, extent[1], 1e-3);
      EXPECT_NEAR(cx + w / 2, extent[2], 1e-3);
      EXPECT_NEAR(cy + h / 2, extent[3], 1e-3);
    }
    distinct_places += !targets[0].boxes.equal(targets[1].boxes) || !targets[1].boxes.equal(targets[2].boxes);
  }
  EXPECT_GT(kept, 20);
  EXPECT_GT(dropped, 0) << "some regions miss the rectangle";
  EXPECT_GT(widths.size(), 5u) << "region sizes are drawn";
  EXPECT_GT(distinct_places, 10) << "each image of a batch is cut at its own place";
}

// Cropped batches still get the batch's random resize; probability 0 leaves
// batches as the resize alone makes them.
TEST(RandomSizeCropTest, ResizesAfterTheCropAndOnlyWhenDrawn) {
  const std::string dir = WriteOneRectangleSet("one-rectangle-resized");
  const DetectionDataset dataset(dir + "/train.json", dir + "/images");
  std::mt19937_64 rng(7);
  int cropped = 0;
  for (int draw = 0; draw < 40; ++draw) {
    at::Tensor pixels, mask;
    std::vector<Target> targets;
    dataset.Batch({0, 0}, pixels, mask, targets, RandomResize{{48}, 0}, &rng, RandomSizeCrop{0.5, {32}, 20, 40});
    EXPECT_EQ(std::min(pixels.size(2), pixels.size(3)), 48) << "the shortest edge is the resize's";
    cropped += pixels.size(3) * 2 != pixels.size(2) * 3;  // the image's 3:2 changed: a region was cut
  }
  EXPECT_GT(cropped, 10);
  EXPECT_LT(cropped, 35) << "about half the batches";
  for (int draw = 0; draw < 10; ++draw) {
    at::Tensor pixels, mask;
    std::vector<Target> targets;
    dataset.Batch({0}, pixels, mask, targets, RandomResize{{48}, 0}, &rng, RandomSizeCrop{0.0, {32}, 20, 40});
    EXPECT_EQ(pixels.sizes(), (at::IntArrayRef{1, 3, 48, 72}));
  }
}

}  // namespace
}  // namespace detr::training
