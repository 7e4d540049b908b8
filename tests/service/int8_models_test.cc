// The int8 variant as users deploy it: deploy/detr-server-int8.yaml's softmax
// and softmax-int8 served side by side, described by ListModels and the
// metrics, answering alike; and int8 entries that cannot load refused at
// start, naming the file.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/service/config/server_config.h"
#include "server/types/detection_agreement.h"
#include "tests/service/shipped_models.h"
#include "tests/service/test_servers.h"

namespace detr::service {
namespace {

const std::string kDeploy = std::string(DETR_SOURCE_DIR) + "/deploy/";

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

v1::DetectResponse DetectShapes(testing::InProcessServer& server, const std::string& model) {
  v1::DetectRequest request;
  request.mutable_image()->set_encoded(ReadBytes(kDeploy + "samples/shapes.png"));
  request.set_model(model);
  request.set_score_threshold(0.5f);
  v1::DetectResponse response;
  grpc::ClientContext context;
  EXPECT_TRUE(server.Stub()->Detect(&context, request, &response).ok()) << model;
  return response;
}

TEST(Int8ModelsTest, TheExampleConfigServesFloat32AndInt8SideBySide) {
  testing::InProcessServer server(ServerConfig::FromFile(kDeploy + "detr-server-int8.yaml"));
  ASSERT_TRUE(server.ok());
  grpc::ClientContext context;
  v1::ListModelsResponse models;
  ASSERT_TRUE(server.Stub()->ListModels(&context, {}, &models).ok());
  ASSERT_EQ(models.models_size(), 2);
  for (const auto& model : models.models()) {
    const bool int8 = model.name() == "softmax-int8";
    EXPECT_EQ(model.precision(), int8 ? "int8" : "float32") << model.name();
    EXPECT_EQ(model.backbone_engine().find("int8") != std::string::npos, int8) << model.backbone_engine();
    EXPECT_EQ(model.backbone_engine().find(" ref"), std::string::npos) << model.backbone_engine();
    EXPECT_EQ(
        server.Metric("detr_model_info{decoder_cross=\"softmax\",decoder_self=\"softmax\",encoder_self=\"softmax\","
                      "model=\"" +
                      model.name() + "\",precision=\"" + model.precision() + "\",random_weights=\"false\"}"),
        1);
  }
  // The same shapes, classes and (within a pixel or two) boxes.
  const auto float32 = DetectShapes(server, "softmax");
  const auto int8 = DetectShapes(server, "softmax-int8");
  ASSERT_EQ(int8.detections_size(), float32.detections_size());
  ASSERT_GT(float32.detections_size(), 0);
  for (const auto& expected : float32.detections()) {
    const float a[4] = {expected.box().x0(), expected.box().y0(), expected.box().x1(), expected.box().y1()};
    const bool matched = std::any_of(int8.detections().begin(), int8.detections().end(), [&](const auto& d) {
      const float b[4] = {d.box().x0(), d.box().y0(), d.box().x1(), d.box().y1()};
      return d.class_id() == expected.class_id() && BoxIou(a, b) > 0.9f;
    });
    EXPECT_TRUE(matched) << expected.class_name() << " at " << a[0] << "," << a[1];
  }
  EXPECT_EQ(server.Metric("detr_requests_total{code=\"OK\",model=\"softmax-int8\"}"), 1);
  // detr-client models says which arm is which.
  const auto listed = nlohmann::json::parse(
      testing::CommandOutput(std::string(DETR_CLIENT_BINARY) + " models --json --target " + server.target()));
  EXPECT_EQ(listed.at("models").at(1).at("precision"), "int8") << listed.dump();
  EXPECT_NE(
      testing::CommandOutput(std::string(DETR_CLIENT_BINARY) + " models --target " + server.target()).find("int8"),
      std::string::npos);
}

// An int8 entry whose calibration is missing or truncated stops the server
// from starting, with an error that names the file; the config also refuses
// what it can see itself.
TEST(Int8ModelsTest, BadCalibrationFilesStopTheStartNamingTheFile) {
  const auto truncated = (std::filesystem::temp_directory_path() / "detr-int8-truncated.json").string();
  const std::string good = ReadBytes(kDeploy + "models/default-softmax.int8.json");
  std::ofstream(truncated) << good.substr(0, good.size() / 3);
  const auto missing = (std::filesystem::temp_directory_path() / "detr-int8-missing.json").string();
  std::filesystem::remove(missing);
  for (const auto& calibration : {truncated, missing}) {
    const std::string yaml =
        "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\nmodels:\n  - {name: q, model_config: " + kDeploy +
        "models/default-softmax.json, weights: " + kDeploy +
        "models/default-softmax.safetensors, precision: int8, calibration: " + calibration + "}\n";
    const auto started = Server::Start(ServerConfig::FromText(yaml, "test.yaml", "/"), testing::LoadDetector);
    ASSERT_FALSE(started.ok()) << calibration;
    EXPECT_NE(std::string(started.status().message()).find(calibration), std::string::npos)
        << started.status().message();
  }
  const auto refused = [](const std::string& entry) {
    try {
      ServerConfig::FromText("models:\n  - " + entry + "\n", "test.yaml", "/");
      return std::string("accepted");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
  };
  const std::string model = "{name: q, architecture: {backbone: resnet18}, ";
  EXPECT_NE(refused(model + "precision: int4}").find("expected float32 or int8"), std::string::npos);
  EXPECT_NE(refused(model + "precision: int8}").find("calibration"), std::string::npos);
  EXPECT_NE(refused(model + "calibration: x.json}").find("int8 only"), std::string::npos);
  const auto config = ServerConfig::FromText("models:\n  - " + model + "weights: m/w.safetensors, precision: int8}\n",
                                             "test.yaml", "/d");
  EXPECT_EQ(config.models[0].calibration, "/d/m/w.int8.json");  // beside the weights
}

}  // namespace
}  // namespace detr::service
