// The caching, tracking CPU allocator: counts, peaks, reuse, its cache's
// limit, per-thread scopes.
#include <unistd.h>

#include <fstream>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "server/core/runtime/cpu_allocator.h"

namespace detr::core {
namespace {

constexpr int64_t kFloats = 1 << 20;  // 4 MiB, above the caching threshold
constexpr std::size_t kBytes = kFloats * sizeof(float);

TEST(CpuAllocatorTest, CountsBytesInUseAndPeak) {
  CachingCpuAllocator allocator;
  ScopedCpuAllocator use(allocator);
  {
    auto a = at::empty({kFloats});
    auto b = at::empty({kFloats});
    EXPECT_EQ(allocator.bytes_in_use(), 2 * kBytes);
  }
  EXPECT_EQ(allocator.bytes_in_use(), 0u);
  EXPECT_EQ(allocator.peak_bytes(), 2 * kBytes);
  allocator.ResetPeak();
  EXPECT_EQ(allocator.peak_bytes(), 0u);
}

TEST(CpuAllocatorTest, ReusesFreedBlocksOfTheSameSize) {
  CachingCpuAllocator allocator;
  ScopedCpuAllocator use(allocator);
  void* first = nullptr;
  {
    auto a = at::empty({kFloats});
    first = a.data_ptr();
  }
  EXPECT_GE(allocator.cached_bytes(), kBytes);
  auto again = at::empty({kFloats});
  EXPECT_EQ(again.data_ptr(), first);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(again.data_ptr()) % 64, 0u) << "data must stay 64-byte aligned";
  allocator.ReleaseCache();
  EXPECT_EQ(allocator.cached_bytes(), 0u);
}

TEST(CpuAllocatorTest, ACachedBlockServesSmallerRequestsWithinTheRatio) {
  CachingCpuAllocator allocator;  // max_reuse_ratio 2
  ScopedCpuAllocator use(allocator);
  void* first = nullptr;
  {
    auto a = at::empty({2 * kFloats});
    first = a.data_ptr();
  }
  {
    auto smaller = at::empty({kFloats + kFloats / 4});  // 1.6 x smaller: the cached block serves it
    EXPECT_EQ(smaller.data_ptr(), first);
    EXPECT_EQ(allocator.cached_bytes(), 0u);
    EXPECT_EQ(allocator.bytes_in_use(), (kFloats + kFloats / 4) * sizeof(float));  // what was asked for
  }
  auto much_smaller = at::empty({kFloats / 2});  // 4 x smaller: a block of its own
  EXPECT_NE(much_smaller.data_ptr(), first);
  EXPECT_GE(allocator.cached_bytes(), 2 * kBytes);
}

double ResidentBytes() {
  long pages_total = 0, pages_resident = 0;
  std::ifstream("/proc/self/statm") >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

TEST(CpuAllocatorTest, WhatTheCacheDoesNotKeepLeavesTheProcess) {
  CachingCpuAllocator allocator;
  ScopedCpuAllocator use(allocator);
  {
    std::vector<at::Tensor> blocks;
    for (int i = 0; i < 8; ++i) blocks.push_back(at::ones({kFloats}));  // touched: resident
  }
  EXPECT_GE(allocator.cached_bytes(), 8 * kBytes);
  const double before = ResidentBytes();
  allocator.SetMaxCachedBytes(2 * kBytes + 1024);
  EXPECT_LE(allocator.cached_bytes(), 2 * kBytes + 1024);
  EXPECT_EQ(allocator.max_cached_bytes(), 2 * kBytes + 1024);
  // Six blocks of 4 MiB went back to the system, not to a heap that keeps them.
  EXPECT_LT(ResidentBytes(), before - 5.5 * kBytes);
  {
    std::vector<at::Tensor> blocks;
    for (int i = 0; i < 4; ++i) blocks.push_back(at::ones({kFloats}));
  }
  EXPECT_LE(allocator.cached_bytes(), 2 * kBytes + 1024);  // the limit holds for what is freed later
}

TEST(CpuAllocatorTest, ScopeMeasuresOnlyItsOwnThread) {
  CachingCpuAllocator allocator;
  ScopedCpuAllocator use(allocator);
  MemoryScope scope;
  auto mine = at::empty({kFloats});
  std::thread other([] { auto theirs = at::empty({4 * kFloats}); });
  other.join();
  { auto temporary = at::empty({2 * kFloats}); }
  EXPECT_EQ(scope.bytes_in_use(), kBytes);
  EXPECT_EQ(scope.peak_bytes(), 3 * kBytes);  // mine + temporary, not the other thread's
  EXPECT_GE(allocator.peak_bytes(), 4 * kBytes);
}

TEST(CpuAllocatorTest, ComputesCorrectlyAndOutlivesTheAllocator) {
  at::Tensor survivor;
  {
    CachingCpuAllocator allocator;
    ScopedCpuAllocator use(allocator);
    auto a = at::arange(1000, at::kFloat);
    survivor = (a * 2).sum(0, /*keepdim=*/true) + at::zeros({kFloats});
    // A oneDNN convolution allocates through raw_allocate(): it must work too.
    auto conv = at::conv2d(at::ones({1, 3, 16, 16}), at::ones({4, 3, 3, 3}));
    EXPECT_FLOAT_EQ(conv[0][0][5][5].item<float>(), 27.0f);
  }
  // The allocator is gone; the tensor's block is still valid and freed later.
  EXPECT_FLOAT_EQ(survivor[0].item<float>(), 999000.0f);
}

}  // namespace
}  // namespace detr::core
