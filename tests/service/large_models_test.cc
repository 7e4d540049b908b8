// The optional second model pair (issue 16's task where attention costs
// show), served by deploy/detr-server-large.yaml exactly as `make
// serve-large` serves it, evaluated through the real server by `detr-client
// eval` on 40 freshly drawn 512-px validation images of the documented task
// (docs/accuracy.md#a-task-where-attention-costs-show).
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/service/test_servers.h"

namespace detr::service {
namespace {

const std::string kSource = DETR_SOURCE_DIR;

TEST(LargeModelsTest, ShippedConfigServesTheTrainedLargePair) {
  testing::ServerProcessOptions options;
  options.extra_args = {"--config", kSource + "/deploy/detr-server-large.yaml"};
  testing::ServerProcess server("", "large_models", options);
  ASSERT_GT(server.pid(), 0);

  v1::ListModelsResponse list;
  grpc::ClientContext context;
  ASSERT_TRUE(server.Stub()->ListModels(&context, v1::ListModelsRequest(), &list).ok());
  ASSERT_EQ(list.models_size(), 2);
  for (const auto& model : list.models()) {
    EXPECT_FALSE(model.random_weights()) << model.name() << " should load its trained weights";
    ASSERT_EQ(model.class_names_size(), 4) << model.name();
  }

  // The task's generator arguments (server/tools/train_large_task.sh) with a
  // seed that neither training nor docs/accuracy.md's validation set used.
  const std::string dir = std::string(DETR_TEST_OUTPUT_DIR) + "/large_models_data";
  const std::string make_data = std::string(DETR_DATA_BINARY) + " --output " + dir +
                                " --seed 17 --train 0 --val 40 --size 512 --max-shapes 30 --min-extent 12"
                                " --max-extent 48 2>/dev/null";
  ASSERT_EQ(std::system(make_data.c_str()), 0) << make_data;
  const std::string figures_path = dir + "/figures.json";
  const std::string eval = std::string(DETR_CLIENT_BINARY) + " --target " + server.target() + " eval --annotations " +
                           dir + "/val.json --images " + dir +
                           "/val --model-a large-softmax --model-b large-optimization-encoder --json " + figures_path +
                           " 2>/dev/null";
  ASSERT_EQ(std::system(eval.c_str()), 0) << eval;
  std::ifstream in(figures_path);
  const auto figures = nlohmann::json::parse(in);
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
