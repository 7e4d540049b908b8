// The trained default models, served by the built-in configuration exactly as
// `make serve` serves them, evaluated through the real server by
// `detr-client eval` on the documented synthetic validation sets
// (held-out draws no selection used: detr-data --seed 101, square, and
// --seed 103, 128-px content on a 192x128 canvas; 200 images each, as
// results/padding.jsonl records them).
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

#include "server/service/config/server_config.h"
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
  testing::InProcessServer server(ServerConfig::Default());
  ASSERT_TRUE(server.ok());
  // The encoder-only model's boxes are looser (AP 0.50 against 0.76 on the
  // held-out square draw): its small circle overlaps the truth by 0.65.
  // Threshold 0.7, the official DETR demo's: DETR has no NMS, and the softmax
  // shipped since 2026-12-07 adds a second box on the square at 0.55
  // (docs/accuracy.md, "A softmax for square and non-square images").
  const std::vector<std::pair<std::string, float>> models = {
      {"softmax", 0.7f}, {"optimization", 0.7f}, {"optimization-encoder", 0.6f}};
  for (const auto& [model, min_iou] : models) {
    v1::DetectRequest request;
    request.mutable_image()->set_encoded(ReadBytes(std::string(DETR_SOURCE_DIR) + "/deploy/samples/shapes.png"));
    request.set_model(model);
    request.set_score_threshold(0.7f);
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
  testing::InProcessServer server(ServerConfig::Default());
  ASSERT_TRUE(server.ok());
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
  testing::InProcessServer server(ServerConfig::Default());
  ASSERT_TRUE(server.ok());
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

// The committed record of `padding_accuracy.py` (results/padding.jsonl) for
// MODEL on SET ("square", "padded 192x128"): the latest one's unpadded figures.
nlohmann::json RecordedFigures(const std::string& model, const std::string& set) {
  nlohmann::json latest;
  std::ifstream results(std::string(DETR_SOURCE_DIR) + "/results/padding.jsonl");
  for (std::string line; std::getline(results, line);) {
    if (line.empty()) continue;
    const auto record = nlohmann::json::parse(line);
    if (record.at("label") == model + ", " + set) latest = record;
  }
  EXPECT_FALSE(latest.is_null()) << "no record for " << model << ", " << set << " in results/padding.jsonl";
  return latest;
}

// The shipped models on held-out draws (seeds 101 and 103: no training, model
// selection or configuration choice used them; the selection sets were seed 7
// (square validation) and seed 13 (padded), docs/accuracy.md), through the
// built-in configuration's server, as results/padding.jsonl recorded them:
// the test fails when a model file or the serving path changes what the
// records and the docs rendered from them say.
void ExpectAsRecorded(const nlohmann::json& measured, const std::string& model, const std::string& set) {
  const auto record = RecordedFigures(model, set);
  if (record.is_null()) return;
  EXPECT_EQ(measured.at("images").get<int>(), record.at("images").get<int>()) << model << ", " << set;
  for (const char* figure : {"ap", "ap50"}) {
    EXPECT_NEAR(measured.at(figure).get<double>(), record.at("unpadded").at(figure).get<double>(), 0.01)
        << model << ", " << set << ": " << figure << " differs from results/padding.jsonl";
  }
}

nlohmann::json EvalHeldOut(const testing::ServerEndpoints& server, const std::string& set,
                           const std::vector<std::string>& models) {
  const auto draw = RecordedFigures(models.front(), set).value("draw", std::string("--seed 101 --size 128"));
  const auto images = RecordedFigures(models.front(), set).value("images", 200);
  std::string flags = "--model-a " + models.at(0) + (models.size() > 1 ? " --model-b " + models.at(1) : "");
  return testing::EvalOnFreshSet(server, "default_models_" + set.substr(0, set.find(' ')) + "_" + models.at(0),
                                 draw + " --train 0 --val " + std::to_string(images), flags);
}

TEST(DefaultModelsTest, BuiltInConfigServesTrainedShapeDetectorsAsRecordedOnHeldOutSquareImages) {
  testing::InProcessServer server(ServerConfig::Default());
  ASSERT_TRUE(server.ok());
  testing::ExpectTrainedShapeModels(server, 3);
  const auto pair = EvalHeldOut(server, "square", {"softmax", "optimization"});
  const auto encoder = EvalHeldOut(server, "square", {"optimization-encoder"});
  ExpectAsRecorded(pair.at("softmax"), "softmax", "square");
  ExpectAsRecorded(pair.at("optimization"), "optimization", "square");
  ExpectAsRecorded(encoder.at("optimization-encoder"), "optimization-encoder", "square");
  for (const auto* figures : {&pair.at("softmax"), &pair.at("optimization"), &encoder.at("optimization-encoder")}) {
    EXPECT_GE(figures->at("ap50").get<double>(), 0.85);
  }
  // Issue 37: the shipped softmax holds strict localisation on square images
  // while it holds on wider ones (the padded test below).
  EXPECT_GE(pair.at("softmax").at("ap").get<double>(), 0.75);
}

// Issue 37's other half: the same softmax on images wider than tall.
TEST(DefaultModelsTest, TheShippedSoftmaxHoldsOnHeldOutImagesWiderThanTall) {
  testing::InProcessServer server(ServerConfig::Default());
  ASSERT_TRUE(server.ok());
  const auto figures = EvalHeldOut(server, "padded 192x128", {"softmax"});
  ExpectAsRecorded(figures.at("softmax"), "softmax", "padded 192x128");
  EXPECT_GE(figures.at("softmax").at("ap50").get<double>(), 0.9);
}

// The default route's experiment, whatever the built-in configuration names:
// both arms hold on images wider than tall (issue 37's target, AP50 >= 0.85
// on a held-out padded draw: 128-px content at a random place on a 192x128
// canvas). The all-sites model, trained on square images only, is measured
// and recorded too (AP50 about 0.08), and named for it:
// experiment ab-all-sites-square-only.
TEST(DefaultModelsTest, TheDefaultRoutesArmsHoldOnHeldOutImagesWiderThanTall) {
  const auto config = ServerConfig::Default();
  const auto* experiment = config.FindExperiment(config.DefaultRoute());
  ASSERT_NE(experiment, nullptr) << "the default route is an experiment";
  ASSERT_EQ(experiment->arms.size(), 2u);
  testing::InProcessServer server(ServerConfig::Default());
  ASSERT_TRUE(server.ok());
  const std::vector<std::string> arms = {experiment->arms[0].model, experiment->arms[1].model};
  const auto figures = EvalHeldOut(server, "padded 192x128", arms);
  for (const auto& arm : arms) {
    EXPECT_GE(figures.at(arm).at("ap50").get<double>(), 0.85) << arm;
    ExpectAsRecorded(figures.at(arm), arm, "padded 192x128");
  }
  const auto all_sites = EvalHeldOut(server, "padded 192x128", {"optimization"});
  ExpectAsRecorded(all_sites.at("optimization"), "optimization", "padded 192x128");
  EXPECT_LT(all_sites.at("optimization").at("ap50").get<double>(), 0.85)
      << "the all-sites model holds now: rename ab-all-sites-square-only and update docs/accuracy.md";
}

}  // namespace
}  // namespace detr::service
