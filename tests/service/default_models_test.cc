// The trained default models, served by the built-in configuration exactly as
// `make serve` serves them, evaluated through the real server by
// `detr-client eval` on the documented synthetic validation sets
// (docs/accuracy.md: detr-data --seed 7, square, and --seed 13, 128-px
// content on a 192x128 canvas; the first 100 validation images of each).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/types/detection_agreement.h"
#include "tests/service/shipped_models.h"
#include "tests/service/test_servers.h"

namespace detr::service {
namespace {

struct Shape {
  std::string name;
  float box[4];
};

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// deploy/samples/shapes.png as server/tools/make_sample_image.py draws it.
TEST(DefaultModelsTest, EachModelFindsTheSampleImagesShapes) {
  const std::vector<Shape> truth = {{"circle", {25, 35, 115, 125}},
                                    {"square", {130, 140, 210, 220}},
                                    {"triangle", {150, 20, 230, 100}},
                                    {"circle", {32, 182, 68, 218}}};
  testing::ServerProcess server("", "default_models_sample");
  ASSERT_GT(server.pid(), 0);
  // The encoder-only model's boxes are looser (AP 0.49 against 0.63 on the
  // square set): its small circle overlaps the truth by 0.65.
  const std::vector<std::pair<std::string, float>> models = {
      {"softmax", 0.7f}, {"optimization", 0.7f}, {"optimization-encoder", 0.6f}};
  for (const auto& [model, min_iou] : models) {
    v1::DetectRequest request;
    request.mutable_image()->set_encoded(ReadBytes(std::string(DETR_SOURCE_DIR) + "/deploy/samples/shapes.png"));
    request.set_model(model);
    request.set_score_threshold(0.5f);
    v1::DetectResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(server.Stub()->Detect(&context, request, &response).ok());
    EXPECT_EQ(response.detections_size(), static_cast<int>(truth.size())) << model;
    for (const auto& shape : truth) {
      const bool found = std::any_of(response.detections().begin(), response.detections().end(), [&](const auto& d) {
        const float box[4] = {d.box().x0(), d.box().y0(), d.box().x1(), d.box().y1()};
        return d.class_name() == shape.name && BoxIou(shape.box, box) > min_iou;
      });
      EXPECT_TRUE(found) << model << " missed the " << shape.name << " at " << shape.box[0] << "," << shape.box[1];
    }
  }
}

// `detr-client bench` with the sample image, encoded and as raw pixels
// (--raw): every request answered OK, with the server's timings summarised.
TEST(DefaultModelsTest, ClientBenchSendsEncodedAndRawImages) {
  testing::ServerProcess server("", "default_models_bench");
  ASSERT_GT(server.pid(), 0);
  for (const std::string flag : {"", " --raw"}) {
    const std::string command = std::string(DETR_CLIENT_BINARY) + " --target " + server.target() +
                                " bench --json --concurrency 2 --requests 6" + flag + " " + DETR_SOURCE_DIR +
                                "/deploy/samples/shapes.png 2>/dev/null";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
    ASSERT_TRUE(pipe);
    std::string out;
    char buffer[4096];
    while (std::fgets(buffer, sizeof buffer, pipe.get())) out += buffer;
    const auto report = nlohmann::json::parse(out);
    EXPECT_EQ(report.at("codes").at("OK").get<int>(), 6) << "bench" << flag << ": " << out;
    EXPECT_EQ(report.at("codes").size(), 1u) << "bench" << flag << ": " << out;
    // The server's own timings, from the responses: a forward pass and a
    // preprocessing step took time, and the latency covers the forward pass.
    const auto& server_p50 = report.at("server_p50_seconds");
    EXPECT_GT(server_p50.at("inference").get<double>(), 0.0) << out;
    EXPECT_GT(server_p50.at("preprocess").get<double>(), 0.0) << out;
    const double beyond = server_p50.at("latency_minus_inference").get<double>();
    EXPECT_GT(beyond, 0.0) << out;
    EXPECT_LT(beyond, report.at("latency_seconds").at("p50").get<double>()) << out;
  }
}

// What users expect of the client: `models` lists models and experiments,
// `ab --json` prints its figures as JSON, `detect` names a failure's status,
// and progress lines stay off a stderr that is not a terminal.
TEST(DefaultModelsTest, ClientListsModelsPrintsAbAsJsonAndNamesStatuses) {
  testing::ServerProcess server("", "default_models_client");
  ASSERT_GT(server.pid(), 0);
  const std::string client = std::string(DETR_CLIENT_BINARY) + " --target " + server.target();
  const auto table = testing::CommandOutput(client + " models");
  for (const char* name : {"softmax", "optimization", "ab", "shadow", "split"}) {
    EXPECT_NE(table.find(name), std::string::npos) << name << " missing from:\n" << table;
  }
  // The connection options also after the subcommand, as users type them.
  const auto after =
      testing::CommandOutput(std::string(DETR_CLIENT_BINARY) + " models --json --target " + server.target());
  EXPECT_EQ(nlohmann::json::parse(after).at("models").size(), 3u) << after;
  const auto version = testing::CommandOutput(std::string(DETR_CLIENT_BINARY) + " --version");
  EXPECT_EQ(version.rfind("detr-client ", 0), 0u) << version;
  EXPECT_GT(version.size(), std::string("detr-client \n").size()) << version;
  const auto models = nlohmann::json::parse(testing::CommandOutput(client + " models --json"));
  ASSERT_EQ(models.at("models").size(), 3u);
  EXPECT_EQ(models["models"][1]["attention"]["encoder.self"], "optimization");
  EXPECT_EQ(models["models"][2]["attention"]["encoder.self"], "optimization");
  EXPECT_EQ(models["models"][2]["attention"]["decoder.cross"], "softmax");
  EXPECT_EQ(models["experiments"][0]["arms"].size(), 2u);

  const std::string sample = std::string(DETR_SOURCE_DIR) + "/deploy/samples/shapes.png";
  const auto ab = testing::CommandOutput(client + " ab --json --model-a softmax --model-b optimization " + sample);
  const auto report = nlohmann::json::parse(ab.substr(ab.find('{')));
  EXPECT_GT(report.at("a").at("latency_seconds").at("p50").get<double>(), 0.0) << ab;
  EXPECT_GE(report.at("agreement_f1").get<double>(), 0.0) << ab;
  EXPECT_EQ(ab.find('\r'), std::string::npos) << "no progress line off a terminal";

  const std::string junk = std::string(DETR_TEST_OUTPUT_DIR) + "/not_an_image.png";
  std::ofstream(junk) << "not an image";
  const auto failed = nlohmann::json::parse(testing::CommandOutput(client + " detect " + junk));
  EXPECT_EQ(failed.at("code"), "INVALID_ARGUMENT");

  const auto bench = testing::CommandOutput(client + " bench --requests 2 " + sample);
  EXPECT_EQ(bench.find('\r'), std::string::npos) << bench;
}

// The default pair on a freshly drawn validation set.
nlohmann::json EvalBothModels(const testing::ServerProcess& server, const std::string& dir_name,
                              const std::string& data_arguments) {
  return testing::EvalTwoModels(server, dir_name, data_arguments, "softmax", "optimization");
}

TEST(DefaultModelsTest, BuiltInConfigServesTrainedShapeDetectors) {
  testing::ServerProcess server("", "default_models");
  ASSERT_GT(server.pid(), 0);

  testing::ExpectTrainedShapeModels(server, 3);

  const auto figures = EvalBothModels(server, "default_models_data", "--seed 7 --train 0 --val 100");
  const auto& softmax = figures.at("softmax");
  const auto& optimization = figures.at("optimization");
  EXPECT_EQ(softmax.at("images").get<int>(), 100);
  // docs/accuracy.md reports the full 500-image figures; these floors sit a
  // little below them to allow for the smaller sample.
  EXPECT_GE(softmax.at("ap50").get<double>(), 0.85);
  EXPECT_GE(softmax.at("ap").get<double>(), 0.55);
  EXPECT_GE(optimization.at("ap50").get<double>(), 0.85);
  EXPECT_GE(optimization.at("ap").get<double>(), 0.55);
  // The encoder-only model, fine-tuned on mixed aspect ratios, trades some
  // box precision on square images for holding on wider ones (0.942 / 0.489).
  const auto encoder = testing::EvalOnFreshSet(server, "default_models_encoder_data", "--seed 7 --train 0 --val 100",
                                               "--model optimization-encoder")
                           .at("optimization-encoder");
  EXPECT_EQ(encoder.at("images").get<int>(), 100);
  EXPECT_GE(encoder.at("ap50").get<double>(), 0.85);
  EXPECT_GE(encoder.at("ap").get<double>(), 0.42);
}

// Images wider than tall, as users send them: the target set, 128-px
// content at a random place on a 192x128 canvas. The softmax model and the
// encoder-only optimization model, fine-tuned on mixed aspect ratios, score
// AP50 0.904 and 0.888 on its 500 images (the targets: 0.9 and 0.85;
// the square models scored 0.20 and 0.07). The all-sites optimization model
// is the square one (docs/accuracy.md#non-square-images): only its answering
// is checked.
TEST(DefaultModelsTest, SoftmaxAndEncoderOptimizationDetectOnImagesWiderThanTall) {
  testing::ServerProcess server("", "default_models_wide");
  ASSERT_GT(server.pid(), 0);
  const std::string padded = "--seed 13 --size 128 --pad-to 192x128 --train 0 --val ";
  const auto figures = EvalBothModels(server, "default_models_wide_data", padded + "100");
  EXPECT_EQ(figures.at("softmax").at("images").get<int>(), 100);
  EXPECT_GE(figures.at("softmax").at("ap50").get<double>(), 0.87);
  EXPECT_EQ(figures.at("optimization").at("images").get<int>(), 100);
  // The whole documented set for the encoder model, whose 0.888 sits nearer
  // its target (on the first 100 images: 0.858).
  const auto encoder = testing::EvalOnFreshSet(server, "default_models_wide_encoder_data", padded + "500",
                                               "--model optimization-encoder")
                           .at("optimization-encoder");
  EXPECT_EQ(encoder.at("images").get<int>(), 500);
  EXPECT_GE(encoder.at("ap50").get<double>(), 0.85);
}

}  // namespace
}  // namespace detr::service
