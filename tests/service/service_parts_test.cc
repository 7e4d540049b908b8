// Small pieces of the service: status mapping, routing-key hashing, config
// errors, image header sniffing, detection agreement.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "server/types/detection_agreement.h"
#include "server/image/image_header.h"
#include "server/service/status_mapping.h"
#include "server/service/pipeline/router.h"
#include "server/service/config/cgroup_dirs.h"
#include "server/service/config/cpu_limit.h"
#include "server/service/config/server_config.h"
#include "server/service/memory/memory_budget.h"

namespace detr::service {
namespace {

// The one mapping from the request path's errors to what front ends answer.
// intra_op_threads: 0 under a Kubernetes CPU limit: the quota, not the node's cores.
TEST(CpuLimitTest, ReadsTheCgroupQuotaOfEitherVersionAndCapsTheThreads) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(DETR_TEST_OUTPUT_DIR) / "cpu_cgroup";
  fs::remove_all(dir);
  fs::create_directories(dir / "cpu");
  EXPECT_FALSE(CgroupCpuLimit(dir.string()).has_value());  // no files: no quota
  std::ofstream(dir / "cpu/cpu.cfs_quota_us") << "-1\n";   // v1, unlimited
  std::ofstream(dir / "cpu/cpu.cfs_period_us") << "100000\n";
  EXPECT_FALSE(CgroupCpuLimit(dir.string()).has_value());
  std::ofstream(dir / "cpu/cpu.cfs_quota_us") << "150000\n";  // 1.5 cores: 2 threads
  EXPECT_EQ(CgroupCpuLimit(dir.string()), std::optional<int>(2));
  std::ofstream(dir / "cpu.max") << "max 100000\n";  // v2 unlimited: the tightest quota found still binds
  EXPECT_EQ(CgroupCpuLimit(dir.string()), std::optional<int>(2));
  fs::remove_all(dir / "cpu");
  EXPECT_FALSE(CgroupCpuLimit(dir.string()).has_value());
  std::ofstream(dir / "cpu.max") << "100000 100000\n";
  EXPECT_EQ(CgroupCpuLimit(dir.string()), std::optional<int>(1));
  EXPECT_EQ(IntraOpThreads(0, dir.string()), 1) << "the quota caps the cores";
  EXPECT_EQ(IntraOpThreads(3, dir.string()), 3) << "a configured count stands";
  std::ofstream(dir / "cpu.max") << "6400000 100000\n";  // 64 cores: capped by the cores this process may use
  EXPECT_EQ(IntraOpThreads(0, dir.string()), IntraOpThreads(0, (dir / "none").string()));
  EXPECT_GE(IntraOpThreads(0, (dir / "none").string()), 1);
}

// A process in a child group without a cgroup namespace (a systemd service, a
// v1 container on the host's namespace) finds its limits under the path
// /proc/self/cgroup names, not at the mount's root.
TEST(CpuLimitTest, ReadsTheProcesssOwnGroupNamedInProcSelfCgroup) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(DETR_TEST_OUTPUT_DIR) / "own_cgroup";
  fs::remove_all(dir);
  fs::create_directories(dir / "cpu,cpuacct/kubepods/pod1");
  fs::create_directories(dir / "system.slice/detr.service");
  std::ofstream(dir / "self_v1") << "5:cpu,cpuacct:/kubepods/pod1\n4:memory:/kubepods/pod1\n0::/\n";
  std::ofstream(dir / "self_v2") << "0::/system.slice/detr.service\n";
  EXPECT_EQ(CgroupDirs(dir.string(), "cpu", (dir / "self_v1").string()),
            (std::vector<std::string>{(dir / "cpu/kubepods/pod1").string(), dir.string(), (dir / "cpu").string()}));
  std::ofstream(dir / "cpu,cpuacct/kubepods/pod1/cpu.cfs_quota_us") << "300000\n";
  std::ofstream(dir / "cpu,cpuacct/kubepods/pod1/cpu.cfs_period_us") << "100000\n";
  EXPECT_FALSE(CgroupCpuLimit(dir.string(), (dir / "self_v1").string()).has_value());
  // v1 hosts mount cpu,cpuacct and link cpu to it.
  fs::create_directory_symlink(dir / "cpu,cpuacct", dir / "cpu");
  EXPECT_EQ(CgroupCpuLimit(dir.string(), (dir / "self_v1").string()), std::optional<int>(3));
  std::ofstream(dir / "system.slice/detr.service/cpu.max") << "200000 100000\n";
  std::ofstream(dir / "system.slice/detr.service/memory.max") << "1073741824\n";
  EXPECT_EQ(CgroupCpuLimit(dir.string(), (dir / "self_v2").string()), std::optional<int>(2));
  EXPECT_EQ(CgroupMemoryLimit(dir.string(), (dir / "self_v2").string()), std::optional<std::uint64_t>(1073741824));
  std::ofstream(dir / "memory.max") << "536870912\n";  // a tighter ancestor binds
  EXPECT_EQ(CgroupMemoryLimit(dir.string(), (dir / "self_v2").string()), std::optional<std::uint64_t>(536870912));
  std::ofstream(dir / "self_escape") << "0::/../../etc\n";  // never leaves the mount
  EXPECT_EQ(CgroupDirs(dir.string(), "memory", (dir / "self_escape").string()).size(), 2u);
}

TEST(StatusMappingTest, KeepsCodeAndMessageAndNamesEachCode) {
  const auto grpc_status = ToGrpcStatus(absl::NotFoundError("no model 'x'"));
  EXPECT_EQ(grpc_status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(grpc_status.error_message(), "no model 'x'");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("")).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ToGrpcStatus(absl::CancelledError("")).error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(ToGrpcStatus(absl::DeadlineExceededError("")).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(ToGrpcStatus(absl::UnavailableError("")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_STREQ(StatusCodeName(absl::StatusCode::kResourceExhausted), "RESOURCE_EXHAUSTED");
  EXPECT_STREQ(StatusCodeName(absl::StatusCode::kUnauthenticated), "UNAUTHENTICATED");
  EXPECT_STREQ(StatusCodeName(static_cast<absl::StatusCode>(99)), "UNKNOWN");
  EXPECT_EQ(HttpStatus(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatus(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatus(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatus(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatus(absl::StatusCode::kInternal), 500);
}

TEST(RouterTest, StickyPositionIsStableAndSpread) {
  EXPECT_EQ(Router::StickyPosition("camera-7"), Router::StickyPosition("camera-7"));
  int low = 0;
  for (int i = 0; i < 1000; ++i) {
    const double p = Router::StickyPosition("user-" + std::to_string(i));
    ASSERT_GE(p, 0.0);
    ASSERT_LT(p, 1.0);
    low += p < 0.5;
  }
  EXPECT_NEAR(low, 500, 80);  // 5 standard deviations of Binomial(1000, 0.5)
}

std::string ConfigError(const std::string& yaml) {
  try {
    ServerConfig::FromText(yaml, "test.yaml", ".");
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(ServerConfigTest, TheBuiltInConfigIsValid) {
  const auto config = ServerConfig::Default();
  ASSERT_EQ(config.models.size(), 3u);
  EXPECT_EQ(config.models[1].config.encoder_self.type, core::AttentionType::kOptimization);
  EXPECT_EQ(config.models[1].config.decoder_cross.type, core::AttentionType::kOptimization);
  EXPECT_EQ(config.models[0].config.decoder_cross.type, core::AttentionType::kSoftmax);
  EXPECT_EQ(config.models[2].config.encoder_self.type, core::AttentionType::kOptimization);
  EXPECT_EQ(config.models[2].config.decoder_cross.type, core::AttentionType::kSoftmax);
  for (const auto& model : config.models) {  // the trained default models, found where the build put them
    EXPECT_TRUE(std::filesystem::exists(model.weights)) << model.weights;
    EXPECT_EQ(model.config.ClassNames().at(1), "circle");
  }
  EXPECT_EQ(config.default_route, "ab");
}

TEST(ServerConfigTest, ErrorsNameTheFileAndField) {
  const std::string arch = "architecture: {backbone: resnet18}";
  EXPECT_NE(ConfigError("models: []").find("test.yaml: 'models' must list at least one model"), std::string::npos);
  // Found by the config fuzzer: an absent key made yaml-cpp throw its own
  // InvalidNode, and a key that is a list was not a setting either.
  EXPECT_NE(ConfigError("listen: 127.0.0.1:0").find("test.yaml: 'models' must list at least one model"),
            std::string::npos);
  EXPECT_NE(ConfigError("? [a, b]\n: 1\nmodels: []").find("is not a known setting"), std::string::npos);
  EXPECT_NE(
      ConfigError("models: [{name: a, " + arch + "}]\nlisten_adress: x").find("'listen_adress' is not a known setting"),
      std::string::npos);
  EXPECT_NE(ConfigError("models: [{name: a, " + arch + ", batching: {max_batch_size: 0}}]")
                .find("models[0].batching.max_batch_size' must be >= 1"),
            std::string::npos);
  EXPECT_NE(ConfigError("models: [{name: a, architecture: {backbone: resnet7}}]").find("backbone"), std::string::npos);
  EXPECT_NE(ConfigError("models: [{name: a, " + arch + "}]\nexperiments: [{name: e, arms: [{model: a}, {model: b}]}]")
                .find("names no model ('b')"),
            std::string::npos);
  EXPECT_NE(ConfigError("models: [{name: a, model_config: /nonexistent.json}]").find("/nonexistent.json: cannot open"),
            std::string::npos);
  EXPECT_NE(ConfigError("models: [{name: a, " + arch + "}]\ndefault_route: zzz").find("'default_route' names no model"),
            std::string::npos);
  EXPECT_NE(ConfigError("models: [{name: a, " + arch + ", attention: {decoder.cross: {type: optimisation}}}]")
                .find("attention.decoder.cross.type"),
            std::string::npos);
}

std::vector<unsigned char> Encode(const std::string& extension, int width, int height) {
  cv::Mat image(height, width, CV_8UC3, cv::Scalar(10, 20, 30));
  std::vector<unsigned char> bytes;
  cv::imencode(extension, image, bytes);
  return bytes;
}

TEST(ServerConfigTest, CanvasesMustHoldWhatTheResizeRuleMakes) {
  const std::string model = "models: [{name: a, architecture: {backbone: resnet18}, preprocessing: ";
  const auto config =
      ServerConfig::FromText(model +
                                 "{canvases: [[800, 800], [800, 1088], [1088, 800], [800, 1344], [1344, 800]]}, "
                                 "batching: {max_batch_size: 2}}]",
                             "test.yaml", ".");
  ASSERT_EQ(config.models[0].preprocessing.canvases.size(), 5u);
  EXPECT_EQ(config.models[0].preprocessing.InputShapes()[3], (image::Canvas{800, 1344}));
  EXPECT_EQ(config.models[0].BackbonePlans(), 10);  // 5 canvases x batch chunks of 1 and 2
  EXPECT_NE(ConfigError(model + "{canvases: [[800, 1344]]}}]").find("no canvas holds a 1333x800 image"),
            std::string::npos);
  EXPECT_NE(ConfigError(model + "{shortest_edge: 0, canvases: [[800, 1344]]}}]").find("need both shortest_edge"),
            std::string::npos);
  EXPECT_NE(ConfigError(model + "{canvas: [8, 8], canvases: [[8, 8]]}}]").find("has both canvas and canvases"),
            std::string::npos);
  EXPECT_NE(ConfigError(model + "{canvases: [[800, 99999]]}}]").find("canvases[0]' must be [height, width]"),
            std::string::npos);
  EXPECT_NE(ConfigError(model + "{canvases: []}}]").find("must be a list of 1 to 16"), std::string::npos);
  EXPECT_NE(ConfigError("limits: {memory_limit_bytes: -1}\n" + model + "{}}]").find("memory_limit_bytes"),
            std::string::npos);
}

TEST(ImageHeaderTest, ReadsTheSizeOfEachFormatWithoutDecoding) {
  for (const std::string extension : {".png", ".jpg", ".bmp", ".webp"}) {
    const auto bytes = Encode(extension, 123, 45);
    const auto size = image::PeekImageSize(bytes.data(), bytes.size());
    ASSERT_TRUE(size.has_value()) << extension;
    EXPECT_EQ(size->first, 123) << extension;
    EXPECT_EQ(size->second, 45) << extension;
  }
  const unsigned char garbage[64] = {1, 2, 3};
  EXPECT_FALSE(image::PeekImageSize(garbage, sizeof(garbage)).has_value());
  const auto png = Encode(".png", 10, 10);
  EXPECT_FALSE(image::PeekImageSize(png.data(), 12).has_value()) << "cut-short header";
}

Detection Box(int class_id, float x0, float y0, float x1, float y1, float score = 0.9f) {
  Detection d;
  d.class_id = class_id;
  d.score = score;
  d.box[0] = x0;
  d.box[1] = y0;
  d.box[2] = x1;
  d.box[3] = y1;
  return d;
}

TEST(DetectionAgreementTest, CountsMatchesOfSameClassAtIou) {
  const Detections a = {Box(1, 0, 0, 10, 10), Box(2, 20, 20, 30, 30)};
  EXPECT_DOUBLE_EQ(DetectionAgreement(a, a), 1.0);
  EXPECT_DOUBLE_EQ(DetectionAgreement({}, {}), 1.0);
  EXPECT_DOUBLE_EQ(DetectionAgreement(a, {}), 0.0);
  // Same boxes, one class differs: one of two match.
  const Detections b = {Box(1, 0, 0, 10, 10), Box(3, 20, 20, 30, 30)};
  EXPECT_DOUBLE_EQ(DetectionAgreement(a, b), 0.5);
  // Shifted by half a box: IoU 1/3 < 0.5, no match.
  const Detections c = {Box(1, 5, 0, 15, 10)};
  EXPECT_NEAR(BoxIou(a[0].box, c[0].box), 1.0 / 3.0, 1e-6);
  EXPECT_DOUBLE_EQ(DetectionAgreement({a[0]}, c), 0.0);
  EXPECT_DOUBLE_EQ(DetectionAgreement({a[0]}, c, 0.3f), 1.0);
}

}  // namespace
}  // namespace detr::service
