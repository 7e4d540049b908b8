// The memory budget: the cgroup's limit as the server reads it, and a server
// that sizes every part of its memory at start, refuses a configuration over
// its limit with the parts named, sizes the allocator's cache, and exports
// the budget and each model's weights and plans. A real Server in this
// process on 127.0.0.1, with fake detectors whose memory the test sets.
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "server/service/memory/memory_budget.h"
#include "server/service/server.h"
#include "tests/service/fake_detector.h"
#include "tests/service/test_servers.h"

namespace detr::service {
namespace {

namespace fs = std::filesystem;

fs::path FreshDir(const std::string& name) {
  const fs::path dir = fs::path(DETR_TEST_OUTPUT_DIR) / name;
  fs::remove_all(dir);
  fs::create_directories(dir / "memory");
  return dir;
}

TEST(MemoryBudgetTest, ReadsTheCgroupLimitOfEitherVersion) {
  const auto dir = FreshDir("cgroup");
  EXPECT_FALSE(CgroupMemoryLimit(dir.string()).has_value());                       // no files: no limit
  std::ofstream(dir / "memory/memory.limit_in_bytes") << "9223372036854771712\n";  // v1's "unlimited"
  EXPECT_FALSE(CgroupMemoryLimit(dir.string()).has_value());
  std::ofstream(dir / "memory/memory.limit_in_bytes") << "536870912\n";
  EXPECT_EQ(CgroupMemoryLimit(dir.string()), std::optional<std::uint64_t>(536870912));
  std::ofstream(dir / "memory.max") << "max\n";  // v2, unlimited: then v1's
  EXPECT_EQ(CgroupMemoryLimit(dir.string()), std::optional<std::uint64_t>(536870912));
  std::ofstream(dir / "memory.max") << "4294967296\n";
  EXPECT_EQ(CgroupMemoryLimit(dir.string()), std::optional<std::uint64_t>(4294967296));
}

constexpr std::uint64_t kWeights = 100 << 20, kPlans = 24 << 20;

ServerConfig Config(std::int64_t memory_limit_bytes) {
  auto config = ServerConfig::FromText(
      "limits: {memory_limit_bytes: " + std::to_string(memory_limit_bytes) +
          "}\n"
          "models:\n"
          "  - {name: a, architecture: {backbone: resnet18}, preprocessing: {shortest_edge: 32, longest_edge: 48,\n"
          "     canvases: [[32, 48], [48, 32]]}, batching: {max_batch_size: 2, queue_capacity: 4, workers: 2}}\n",
      "test.yaml", ".");
  config.listen = config.metrics_listen = "127.0.0.1:0";
  return config;
}

DetectorFactory FakeFactory() {
  return [](const ModelEntry&) {
    auto fake = std::make_unique<testing::FakeDetector>();
    fake->set_memory({kWeights, kPlans, 4, 4});
    return fake;
  };
}

TEST(MemoryBudgetTest, AConfigurationOverItsLimitIsRefusedWithItsParts) {
  const auto refused = Server::Start(Config(200 << 20), FakeFactory());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(refused.status().message());
  for (const auto* part : {"does not fit its memory limit", "runtime", "model 'a' weights 100 MB",
                           "model 'a' plans 24 MB", "model 'a' activations", "model 'a' queued inputs", "preprocessing",
                           "allocator cache", "of 200 MB (limits.memory_limit_bytes)"}) {
    EXPECT_NE(message.find(part), std::string::npos) << part << " not in: " << message;
  }
}

TEST(MemoryBudgetTest, AServerThatFitsSizesItsCacheAndExportsTheBudget) {
  std::optional<std::uint64_t> cache_limit;
  AllocatorControl allocator;
  allocator.read = [] { return AllocatorFigures{1e6, 2e6, 3e6}; };
  allocator.set_cache_limit = [&](std::uint64_t bytes) { cache_limit = bytes; };
  auto server = Server::Start(Config(std::int64_t{64} << 30), FakeFactory(), allocator);
  ASSERT_TRUE(server.ok()) << server.status().message();
  // The cache holds what passes free: 2 workers x the largest warm-up pass
  // (the fake's 1000 bytes per image, batches of 2).
  EXPECT_EQ(cache_limit, std::optional<std::uint64_t>(2 * 2000));
  const auto metrics = testing::HttpGet("127.0.0.1:" + std::to_string((*server)->ports().metrics), "/metrics");
  for (const auto* series :
       {"detr_memory_limit_bytes 68719476736", "detr_model_weight_bytes{model=\"a\"} 104857600",
        "detr_model_plan_bytes{model=\"a\"} 25165824", "detr_model_plans{model=\"a\"} 4",
        "detr_memory_budget_bytes{part=\"weights\"} 104857600",
        "detr_memory_budget_bytes{part=\"allocator_cache\"} 4000", "detr_allocator_cached_bytes 2000000"}) {
    EXPECT_NE(metrics.find(series), std::string::npos) << series << " not in:\n" << metrics;
  }
  (*server)->Shutdown();
}

}  // namespace
}  // namespace detr::service
