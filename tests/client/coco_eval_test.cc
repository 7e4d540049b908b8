// COCO evaluation on hand-computed cases, and on the synthetic data set.
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/coco_eval.h"

namespace detr::client {
namespace {

CocoBox Box(int image, int category, float x, float y, float w, float h, float score = 1) {
  CocoBox b;
  b.image_id = image;
  b.category_id = category;
  b.x = x;
  b.y = y;
  b.w = w;
  b.h = h;
  b.score = score;
  return b;
}

const std::vector<CocoBox> kTruth = {Box(1, 1, 10, 10, 50, 50), Box(1, 2, 100, 100, 40, 40), Box(2, 1, 0, 0, 20, 20)};

TEST(CocoEvalTest, PerfectDetectionsScoreOne) {
  const auto s = EvaluateCoco(kTruth, kTruth, {1, 2});
  EXPECT_DOUBLE_EQ(s.ap, 1.0);
  EXPECT_DOUBLE_EQ(s.ap50, 1.0);
  EXPECT_DOUBLE_EQ(s.ap75, 1.0);
  EXPECT_DOUBLE_EQ(s.ap_small, 1.0);   // the 20x20 box
  EXPECT_DOUBLE_EQ(s.ap_medium, 1.0);  // 50x50 and 40x40
  EXPECT_DOUBLE_EQ(s.ap_large, -1.0);  // none that large
  EXPECT_DOUBLE_EQ(s.ar100, 1.0);
}

TEST(CocoEvalTest, NoDetectionsScoreZero) {
  const auto s = EvaluateCoco(kTruth, {}, {1, 2});
  EXPECT_DOUBLE_EQ(s.ap, 0.0);
  EXPECT_DOUBLE_EQ(s.ar100, 0.0);
}

TEST(CocoEvalTest, AShiftedBoxCountsAtTheThresholdsItsIouPasses) {
  // 100x100 box shifted by 16 px: IoU = 84*100 / (2*10000 - 8400) = 0.724.
  const std::vector<CocoBox> truth = {Box(1, 1, 0, 0, 100, 100)};
  const auto s = EvaluateCoco(truth, {Box(1, 1, 16, 0, 100, 100)}, {1});
  EXPECT_DOUBLE_EQ(s.ap50, 1.0);
  EXPECT_DOUBLE_EQ(s.ap75, 0.0);
  EXPECT_DOUBLE_EQ(s.ap, 0.5);  // matched at .50 .55 .60 .65 .70 of ten thresholds
}

TEST(CocoEvalTest, DuplicatesAreFalsePositivesInScoreOrder) {
  const std::vector<CocoBox> truth = {Box(1, 1, 0, 0, 100, 100)};
  // A duplicate below the true positive costs nothing (precision is interpolated).
  EXPECT_DOUBLE_EQ(EvaluateCoco(truth, {Box(1, 1, 0, 0, 100, 100, 0.9f), Box(1, 1, 0, 0, 100, 100, 0.8f)}, {1}).ap,
                   1.0);
  // A false positive ranked first halves precision at every recall.
  EXPECT_DOUBLE_EQ(EvaluateCoco(truth, {Box(1, 1, 300, 300, 50, 50, 0.9f), Box(1, 1, 0, 0, 100, 100, 0.8f)}, {1}).ap,
                   0.5);
  // The wrong class does not match at all.
  EXPECT_DOUBLE_EQ(EvaluateCoco(truth, {Box(1, 2, 0, 0, 100, 100)}, {1}).ap, 0.0);
}

TEST(CocoEvalTest, DetectionsOnCrowdRegionsAreIgnoredNotPenalised) {
  auto crowd = Box(1, 1, 200, 200, 100, 100);
  crowd.crowd = true;
  const std::vector<CocoBox> truth = {Box(1, 1, 0, 0, 100, 100), crowd};
  const auto s = EvaluateCoco(truth, {Box(1, 1, 210, 210, 50, 50, 0.95f), Box(1, 1, 0, 0, 100, 100, 0.9f)}, {1});
  EXPECT_DOUBLE_EQ(s.ap, 1.0);
}

TEST(CocoEvalTest, PrintsThePycocotoolsTable) {
  const auto table = FormatCocoSummary(EvaluateCoco(kTruth, kTruth, {1, 2}));
  EXPECT_NE(table.find(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find(" Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000"),
            std::string::npos)
      << table;
}

TEST(SyntheticDataTest, IsDeterministicAndItsOwnTruthScoresOne) {
  const std::string dir = std::string(DETR_TEST_OUTPUT_DIR) + "/shapes";
  const std::string command =
      std::string(DETR_DATA_BINARY) + " --output " + dir + " --seed 5 --train 3 --val 12 2>/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::ifstream first(dir + "/val.json");
  const auto once = nlohmann::json::parse(first);
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::ifstream second(dir + "/val.json");
  EXPECT_EQ(once, nlohmann::json::parse(second));
  EXPECT_EQ(once["images"].size(), 12u);
  EXPECT_EQ(once["categories"].size(), 3u);

  const auto dataset = ReadCocoAnnotations(dir + "/val.json");
  ASSERT_FALSE(dataset.ground_truth.empty());
  std::vector<int> ids;
  for (const auto& [file, id] : dataset.image_ids) ids.push_back(id);
  EXPECT_DOUBLE_EQ(EvaluateCoco(dataset.ground_truth, dataset.ground_truth, ids).ap, 1.0);
}

}  // namespace
}  // namespace detr::client
