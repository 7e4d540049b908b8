// Process-wide runtime settings: releasing a thread's OpenMP team.
#include <chrono>
#include <filesystem>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "server/core/runtime/runtime.h"

namespace detr::core {
namespace {

int ThreadsOfThisProcess() {
  int count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) ++count;
  return count;
}

at::Tensor ParallelWork() {
  auto x = at::arange(1 << 22, at::kFloat);
  return (x * 2 + 1).sum();  // large enough for LibTorch to run it on every intra-op thread
}

TEST(RuntimeTest, ReleaseIntraOpThreadsEndsTheTeamAndLaterParallelOpsStillRun) {
  ConfigureThreads(2);
  if (at::get_num_threads() < 2) GTEST_SKIP() << "needs two intra-op threads";
  const auto first = ParallelWork();
  const int with_team = ThreadsOfThisProcess();
  ReleaseIntraOpThreads();
  // The workers leave right after the call returns; give them a moment.
  int without_team = ThreadsOfThisProcess();
  for (int i = 0; i < 100 && without_team >= with_team; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    without_team = ThreadsOfThisProcess();
  }
  EXPECT_LT(without_team, with_team) << "the OpenMP worker thread should have ended";
  EXPECT_TRUE(ParallelWork().equal(first));
  EXPECT_EQ(ThreadsOfThisProcess(), with_team) << "the next parallel region starts a team again";
}

}  // namespace
}  // namespace detr::core
