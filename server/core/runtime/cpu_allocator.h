// A CPU allocator for LibTorch that caches large blocks and measures memory.
//
// Why caching: a DETR forward pass at 800x1066 allocates activations of
// hundreds of megabytes. Mapped afresh for every pass, they are page-faulted
// in again each time (measured here: a fifth of the CPU time went to the
// kernel). Keeping freed blocks for reuse removes that; the cache is bounded
// (SetMaxCachedBytes), and what it does not keep is unmapped at once, so the
// allocator's figures are the memory it holds.
//
// Why measuring: the service reports the peak bytes a request's forward pass
// allocated. A MemoryScope on the calling thread collects exactly the
// allocations made on that thread while it is open, so concurrent requests on
// other threads do not blur each other's figures.
#pragma once

#include <cstddef>
#include <memory>

#include <c10/core/Allocator.h>
#include <torch/version.h>

namespace detr::core {

struct MemoryCounters;  // defined in the .cc

class CachingCpuAllocator final : public c10::Allocator {
 public:
  struct Options {
    std::size_t max_cached_bytes = std::size_t{2} << 30;  // freed bytes kept for reuse at most
    std::size_t min_cached_block = std::size_t{1} << 20;  // smaller blocks come from malloc, larger ones are mmaps
    /// A cached block serves a request of at least 1 / max_reuse_ratio of
    /// its size: inputs padded into canvases of similar sizes (800x1088,
    /// 800x1344) then share their activations' blocks instead of each
    /// canvas mapping and page-faulting blocks of its own.
    double max_reuse_ratio = 2.0;
  };

  CachingCpuAllocator();
  explicit CachingCpuAllocator(Options options);
  ~CachingCpuAllocator() override;
  CachingCpuAllocator(const CachingCpuAllocator&) = delete;
  CachingCpuAllocator& operator=(const CachingCpuAllocator&) = delete;

  c10::DataPtr allocate(std::size_t bytes) const override;
  c10::DeleterFnPtr raw_deleter() const override;
#if (TORCH_VERSION_MAJOR > 2) || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#endif

  std::size_t bytes_in_use() const;  ///< allocated through this allocator and not yet freed
  std::size_t peak_bytes() const;    ///< highest bytes_in_use since construction or ResetPeak
  std::size_t cached_bytes() const;  ///< freed, kept for reuse
  void ResetPeak();
  void ReleaseCache();  ///< returns every cached block to the system
  /// Keeps at most `bytes` cached from now on, returning what is over it
  /// (largest blocks first): the server sizes its cache from its budget.
  void SetMaxCachedBytes(std::size_t bytes);
  std::size_t max_cached_bytes() const;

  struct State;  // shared with every live block, so blocks may outlive the allocator

 private:
  std::shared_ptr<State> state_;
};

/// Makes `allocator` LibTorch's CPU allocator until destroyed, then restores
/// the previous one. Tensors allocated meanwhile stay valid after.
class ScopedCpuAllocator {
 public:
  explicit ScopedCpuAllocator(CachingCpuAllocator& allocator);
  ~ScopedCpuAllocator();
  ScopedCpuAllocator(const ScopedCpuAllocator&) = delete;
  ScopedCpuAllocator& operator=(const ScopedCpuAllocator&) = delete;

 private:
  c10::Allocator* previous_;
};

/// Measures what the current thread allocates through a CachingCpuAllocator
/// while the scope is open: bytes still held and the peak above the start.
/// Scopes nest; the innermost one collects.
class MemoryScope {
 public:
  MemoryScope();
  ~MemoryScope();
  MemoryScope(const MemoryScope&) = delete;
  MemoryScope& operator=(const MemoryScope&) = delete;

  std::size_t peak_bytes() const;
  std::size_t bytes_in_use() const;

 private:
  std::shared_ptr<MemoryCounters> counters_;
  MemoryScope* outer_;
  friend struct ScopeAccess;
};

}  // namespace detr::core
