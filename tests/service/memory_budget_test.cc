// The memory budget: the cgroup's limit as the server reads it, and a server
// that sizes every part of its memory at start, refuses a configuration over
// its limit with the parts named, sizes the allocator's cache, and exports
// the budget and each model's weights and plans. A real Server in this
// process on 127.0.0.1, with fake detectors whose memory the test sets.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "server/service/memory/memory_budget.h"
#include "server/service/memory/memory_pressure.h"
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
  std::ofstream(dir / "memory.max") << "max\n";  // v2, unlimited: v1's still binds
  EXPECT_EQ(CgroupMemoryLimit(dir.string()), std::optional<std::uint64_t>(536870912));
  std::ofstream(dir / "memory.max") << "4294967296\n";  // both: the tightest binds
  EXPECT_EQ(CgroupMemoryLimit(dir.string()), std::optional<std::uint64_t>(536870912));
  fs::remove_all(dir / "memory");
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

// Under pressure the caches shrink first: past 90% of the limit the cache is
// emptied (once, not at every sample), and below 80% it gets its size back.
TEST(MemoryPressureTest, EmptiesTheCacheNearTheLimitAndRestoresItBelow) {
  std::uint64_t resident = 0;
  std::vector<std::uint64_t> cache_limits;
  int shrinks = 0;
  MemoryPressureWatch::Options options;
  options.period = std::chrono::milliseconds(0);  // Check() by hand
  options.resident_bytes = [&] { return resident; };
  options.set_cache_limit = [&](std::uint64_t bytes) { cache_limits.push_back(bytes); };
  options.on_shrink = [&] { ++shrinks; };
  MemoryPressureWatch watch(options);
  resident = 990;
  EXPECT_FALSE(watch.Check()) << "no limit: no pressure";
  watch.SetBudget(1000, 300);
  resident = 850;
  EXPECT_FALSE(watch.Check());
  resident = 950;
  EXPECT_TRUE(watch.Check());
  EXPECT_TRUE(watch.shrunk());
  EXPECT_FALSE(watch.Check()) << "already shrunk";
  resident = 850;
  EXPECT_FALSE(watch.Check());
  EXPECT_TRUE(watch.shrunk()) << "between the marks: stays shrunk";
  resident = 700;
  EXPECT_FALSE(watch.Check());
  EXPECT_FALSE(watch.shrunk());
  resident = 960;
  EXPECT_TRUE(watch.Check());
  EXPECT_EQ(cache_limits, (std::vector<std::uint64_t>{0, 300, 0}));
  EXPECT_EQ(shrinks, 2);
}

// The sum of detr_memory_budget_bytes{part=...} in a /metrics text.
double BudgetTotal(const std::string& metrics) {
  std::istringstream lines(metrics);
  double total = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("detr_memory_budget_bytes{", 0) == 0) total += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return total;
}

// The watch's own thread, in a real server: the budget fits its limit, then
// the process's resident memory grows past 90% of it (a block this test
// touches), and the server empties the cache and counts it on /metrics.
TEST(MemoryPressureTest, AServerNearItsLimitEmptiesTheCacheAndCountsIt) {
  std::atomic<std::uint64_t> cache_limit{1};
  AllocatorControl allocator;
  allocator.set_cache_limit = [&](std::uint64_t bytes) { cache_limit = bytes; };
  auto server = Server::Start(Config(std::int64_t{64} << 30), FakeFactory(), allocator);
  ASSERT_TRUE(server.ok()) << server.status().message();
  const auto metrics_port = "127.0.0.1:" + std::to_string((*server)->ports().metrics);
  EXPECT_NE(testing::HttpGet(metrics_port, "/metrics").find("detr_memory_cache_shrinks_total 0"), std::string::npos);

  // A limit just above the budget's parts (the fakes' weights and plans are not resident).
  const auto limit = static_cast<std::uint64_t>(BudgetTotal(testing::HttpGet(metrics_port, "/metrics"))) + (16 << 20);
  ASSERT_TRUE((*server)->Reload(Config(static_cast<std::int64_t>(limit))).ok());
  ASSERT_GT(cache_limit.load(), 0u);
  const auto resident = ResidentBytes();
  std::vector<char> pressure(limit * 95 / 100 > resident ? limit * 95 / 100 - resident : 0);
  std::fill(pressure.begin(), pressure.end(), 1);  // resident, not only reserved
  for (int i = 0; i < 50 && cache_limit.load() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(cache_limit.load(), 0u) << "resident " << ResidentBytes() << " of " << limit;
  EXPECT_NE(testing::HttpGet(metrics_port, "/metrics").find("detr_memory_cache_shrinks_total 1"), std::string::npos);
  pressure = {};
  pressure.shrink_to_fit();
  (*server)->Shutdown();
}

}  // namespace
}  // namespace detr::service
