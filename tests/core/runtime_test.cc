// Process-wide runtime settings: releasing a thread's OpenMP team, and the
// OpenBLAS kernels asked for.
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

TEST(RuntimeTest, AsksForVectorBlasKernelsOnlyInPlaceOfOpenBlasFallbacks) {
  EXPECT_EQ(BlasCoreTypeToRequest("Prescott", /*avx512=*/true, /*avx2=*/true), "SkylakeX");
  EXPECT_EQ(BlasCoreTypeToRequest("Prescott", false, true), "Haswell");  // AVX2 only, or capped at AVX2
  EXPECT_EQ(BlasCoreTypeToRequest("Nehalem", false, true), "Haswell");
  EXPECT_EQ(BlasCoreTypeToRequest("Prescott", false, false), "") << "an SSE-only CPU keeps it";
  EXPECT_EQ(BlasCoreTypeToRequest("SkylakeX", true, true), "");
  EXPECT_EQ(BlasCoreTypeToRequest("Haswell", true, true), "") << "OpenBLAS's own choice (a Zen, say) is kept";
  EXPECT_EQ(BlasCoreTypeToRequest("", true, true), "") << "not OpenBLAS";
}

}  // namespace
}  // namespace detr::core
