// The optional second model pair (issue 16's task where attention costs
// show), served by deploy/detr-server-large.yaml exactly as `make
// serve-large` serves it, evaluated through the real server by `detr-client
// eval` on 40 freshly drawn 512-px validation images of the documented task
// (docs/accuracy.md#a-task-where-attention-costs-show).
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/service/shipped_models.h"
#include "tests/service/test_servers.h"

namespace detr::service {
namespace {

const std::string kSource = DETR_SOURCE_DIR;

TEST(LargeModelsTest, ShippedConfigServesTheTrainedLargePair) {
  testing::InProcessServer server(ServerConfig::FromFile(kSource + "/deploy/detr-server-large.yaml"));
  ASSERT_TRUE(server.ok());

  testing::ExpectTrainedShapeModels(server, 2);
  // `detr-client models` keeps its columns aligned for names longer than 16.
  std::istringstream table(
      testing::CommandOutput(std::string(DETR_CLIENT_BINARY) + " --target " + server.target() + " models"));
  std::string header, row;
  ASSERT_TRUE(std::getline(table, header));
  const auto column = header.find("encoder.self");
  for (const char* attention : {"softmax", "optimization"}) {
    ASSERT_TRUE(std::getline(table, row));
    EXPECT_EQ(row.find(attention, row.find(' ')), column) << header << "\n" << row;
  }

  // The task's generator arguments (server/tools/train_large_task.sh) with a
  // seed that neither training nor docs/accuracy.md's validation set used.
  const auto figures =
      testing::EvalTwoModels(server, "large_models_data",
                             "--seed 17 --train 0 --val 40 --size 512 --max-shapes 30 --min-extent 12 --max-extent 48",
                             "large-softmax", "large-optimization-encoder");
  for (const char* name : {"large-softmax", "large-optimization-encoder"}) {
    const auto& model = figures.at(name);
    EXPECT_EQ(model.at("images").get<int>(), 40) << name;
    EXPECT_GT(model.at("inference_p50_seconds").get<double>(), 0.0) << name;
    EXPECT_GT(model.at("inference_memory_p50_bytes").get<double>(), 0.0) << name;
  }
  // Floors a little below what these 40 images measured on 2026-12-05
  // (softmax 0.440, optimization at encoder.self 0.375; docs/accuracy.md
  // gives the 200-image figures, 0.476 and 0.375). Both detect; softmax
  // is the better of the two at this budget.
  EXPECT_GE(figures.at("large-softmax").at("ap50").get<double>(), 0.40);
  EXPECT_GE(figures.at("large-optimization-encoder").at("ap50").get<double>(), 0.33);
}

}  // namespace
}  // namespace detr::service
