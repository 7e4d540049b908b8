// What /metrics says of memory adds up to what the process holds: DETR-R50
// (seeded weights) at the official 800/1333 resize, padded into the canvases
// of tests/bench/traffic_r50.yaml, through a real detr-server on 127.0.0.1 and
// images of several aspect ratios. The exported parts - the budget's runtime
// part, the tensor allocator's bytes in use (weights, plans, passes) and
// cached, and malloc's in use and free - must come within 15% of the resident
// memory, and every request must find
// its canvas planned at start.
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "tests/service/test_servers.h"

namespace detr::testing {
namespace {

const std::string kSource = DETR_SOURCE_DIR;

std::string Png(int height, int width) {
  cv::Mat image(height, width, CV_8UC3, cv::Scalar(120, 140, 160));
  cv::rectangle(image, {width / 4, height / 4}, {width / 2, height / 2}, cv::Scalar(30, 60, 200), cv::FILLED);
  std::vector<unsigned char> bytes;
  cv::imencode(".png", image, bytes);
  return {bytes.begin(), bytes.end()};
}

TEST(MemoryAccountingTest, ExportedPartsAddUpToTheResidentMemoryAfterAMixOfShapes) {
  std::ifstream config_file(kSource + "/tests/bench/traffic_r50.yaml");
  std::string config((std::istreambuf_iterator<char>(config_file)), {});
  // The model config is found beside the bench config.
  const std::string relative = "model_config: detr_r50.json";
  config.replace(config.find(relative), relative.size(), "model_config: " + kSource + "/tests/bench/detr_r50.json");
  const auto canvases = static_cast<double>(
      service::ServerConfig::FromText(config, "traffic_r50.yaml", ".").models.at(0).preprocessing.canvases.size());
  ASSERT_GE(canvases, 4);
  ServerProcess server(config, "memory-accounting");
  ASSERT_GT(server.pid(), 0);
  EXPECT_EQ(server.Metric("detr_model_plans{model=\"r50\"}"), canvases);  // every canvas, planned before ready

  auto stub = server.Stub();
  // 4:3 both ways, square, 16:9, 2:1 and 1:2: the canvases of every shape class.
  const std::vector<std::pair<int, int>> shapes = {{480, 640}, {640, 480}, {500, 500},
                                                   {360, 640}, {300, 600}, {600, 300}};
  for (int round = 0; round < 2; ++round) {
    for (const auto& [height, width] : shapes) {
      v1::DetectRequest request;
      request.mutable_image()->set_encoded(Png(height, width));
      grpc::ClientContext context;
      v1::DetectResponse response;
      ASSERT_TRUE(stub->Detect(&context, request, &response).ok()) << height << "x" << width;
    }
  }
  EXPECT_EQ(server.Metric("detr_model_plans{model=\"r50\"}"), canvases);  // no shape needed a plan of its own
  const double resident = server.Metric("process_resident_memory_bytes");
  const double parts = server.Metric("detr_memory_budget_bytes{part=\"runtime\"}") +
                       server.Metric("detr_allocator_allocated_bytes") + server.Metric("detr_allocator_cached_bytes") +
                       server.Metric("detr_malloc_in_use_bytes") + server.Metric("detr_malloc_free_bytes");
  ASSERT_GT(resident, 0);
  EXPECT_NEAR(parts / resident, 1.0, 0.15)
      << "parts " << parts / (1 << 20) << " MB, resident " << resident / (1 << 20) << " MB";
  // The weights and plans are inside the allocator's bytes in use.
  EXPECT_LE(
      server.Metric("detr_model_weight_bytes{model=\"r50\"}") + server.Metric("detr_model_plan_bytes{model=\"r50\"}"),
      server.Metric("detr_allocator_allocated_bytes"));
}

}  // namespace
}  // namespace detr::testing
