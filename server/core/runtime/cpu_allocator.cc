#include "server/core/runtime/cpu_allocator.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

namespace detr::core {

struct MemoryCounters {
  std::atomic<std::size_t> in_use{0};
  std::atomic<std::size_t> peak{0};

  void Add(std::size_t bytes) {
    const auto now = in_use.fetch_add(bytes) + bytes;
    auto seen = peak.load();
    while (now > seen && !peak.compare_exchange_weak(seen, now)) {
    }
  }
  void Remove(std::size_t bytes) { in_use.fetch_sub(bytes); }
};

namespace {
// The innermost open MemoryScope of this thread: per-thread context, not
// shared state.
thread_local MemoryScope* current_scope = nullptr;
}  // namespace

struct ScopeAccess {
  static std::shared_ptr<MemoryCounters> Current() { return current_scope ? current_scope->counters_ : nullptr; }
};

// A block of at least min_cached_block bytes is a mapping of its own (mmap),
// so that a block the cache does not keep goes back to the system at once.
// Through malloc it went to glibc's heap, which keeps freed memory mapped:
// serving DETR-R50 on five canvases, the heap held 440 MB more than the
// allocator's blocks, resident and counted nowhere. Smaller blocks use malloc.
struct CachingCpuAllocator::State {
  explicit State(Options o) : options(o), max_cached_bytes(o.max_cached_bytes) {}
  ~State() { Release(); }

  // A block of at least `bytes`: a cached one of at most max_reuse_ratio x
  // `bytes` (the smallest such), else a fresh one. `block_bytes` says which.
  void* Take(std::size_t bytes, std::size_t& block_bytes) {
    block_bytes = bytes;
    if (bytes < options.min_cached_block) return c10::alloc_cpu(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = free_blocks.lower_bound(bytes);
      if (it != free_blocks.end() && static_cast<double>(it->first) <= options.max_reuse_ratio * bytes) {
        block_bytes = it->first;
        void* data = it->second;
        free_blocks.erase(it);
        cached -= block_bytes;
        return data;
      }
    }
    return Map(bytes);
  }

  void Give(void* data, std::size_t block_bytes) {
    if (block_bytes < options.min_cached_block) return c10::free_cpu(data);
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (cached + block_bytes <= max_cached_bytes) {
        free_blocks.emplace(block_bytes, data);
        cached += block_bytes;
        return;
      }
    }
    Unmap(data, block_bytes);
  }

  void Release() { Evict(0); }

  void SetLimit(std::size_t limit) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      max_cached_bytes = limit;
    }
    Evict(limit);
  }

  // Unmaps cached blocks, largest first, until at most `keep` bytes stay.
  void Evict(std::size_t keep) {
    std::vector<std::pair<void*, std::size_t>> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex);
      while (cached > keep) {
        const auto largest = std::prev(free_blocks.end());
        cached -= largest->first;
        evicted.emplace_back(largest->second, largest->first);
        free_blocks.erase(largest);
      }
    }
    for (const auto& [data, size] : evicted) Unmap(data, size);
  }

  static void* Map(std::size_t bytes) {
    void* data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) throw std::bad_alloc();
    return data;
  }
  static void Unmap(void* data, std::size_t bytes) { munmap(data, bytes); }

  const Options options;
  MemoryCounters totals;
  std::mutex mutex;
  std::multimap<std::size_t, void*> free_blocks;  // by size; guarded by mutex
  std::size_t cached = 0;                         // guarded by mutex
  std::size_t max_cached_bytes;                   // guarded by mutex
};

namespace {

// Each allocation carries its bookkeeping in a header just before the data:
// oneDNN allocates through raw_allocate(), which requires the deleter context
// to be the data pointer itself. 64 bytes keep the data 64-byte aligned.
struct BlockHeader {
  std::size_t bytes;        // asked for (what the counters count)
  std::size_t block_bytes;  // the block's own size, header included
  std::shared_ptr<CachingCpuAllocator::State> state;
  std::shared_ptr<MemoryCounters> scope;
};
constexpr std::size_t kHeaderBytes = 64;
static_assert(sizeof(BlockHeader) <= kHeaderBytes, "block header too large");

void DeleteBlock(void* data) {
  if (data == nullptr) return;
  auto* base = static_cast<char*>(data) - kHeaderBytes;
  auto* header = reinterpret_cast<BlockHeader*>(base);
  const auto bytes = header->bytes;
  const auto block_bytes = header->block_bytes;
  auto state = std::move(header->state);
  auto scope = std::move(header->scope);
  header->~BlockHeader();
  state->totals.Remove(bytes);
  if (scope) scope->Remove(bytes);
  state->Give(base, block_bytes);
}

}  // namespace

CachingCpuAllocator::CachingCpuAllocator() : CachingCpuAllocator(Options{}) {}
CachingCpuAllocator::CachingCpuAllocator(Options options) : state_(std::make_shared<State>(options)) {}
CachingCpuAllocator::~CachingCpuAllocator() { state_->Release(); }

c10::DataPtr CachingCpuAllocator::allocate(std::size_t bytes) const {
  std::size_t block_bytes = 0;
  auto* base = static_cast<char*>(state_->Take(bytes + kHeaderBytes, block_bytes));
  auto scope = ScopeAccess::Current();
  if (scope) scope->Add(bytes);
  state_->totals.Add(bytes);
  new (base) BlockHeader{bytes, block_bytes, state_, std::move(scope)};
  void* data = base + kHeaderBytes;
  return {data, data, &DeleteBlock, c10::Device(c10::DeviceType::CPU)};
}

c10::DeleterFnPtr CachingCpuAllocator::raw_deleter() const { return &DeleteBlock; }

std::size_t CachingCpuAllocator::bytes_in_use() const { return state_->totals.in_use.load(); }
std::size_t CachingCpuAllocator::peak_bytes() const { return state_->totals.peak.load(); }
void CachingCpuAllocator::ResetPeak() { state_->totals.peak.store(state_->totals.in_use.load()); }
void CachingCpuAllocator::ReleaseCache() { state_->Release(); }
void CachingCpuAllocator::SetMaxCachedBytes(std::size_t bytes) { state_->SetLimit(bytes); }
std::size_t CachingCpuAllocator::max_cached_bytes() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->max_cached_bytes;
}

std::size_t CachingCpuAllocator::cached_bytes() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->cached;
}

ScopedCpuAllocator::ScopedCpuAllocator(CachingCpuAllocator& allocator) : previous_(c10::GetCPUAllocator()) {
  c10::SetCPUAllocator(&allocator, /*priority=*/100);
}

ScopedCpuAllocator::~ScopedCpuAllocator() { c10::SetCPUAllocator(previous_, /*priority=*/100); }

MemoryScope::MemoryScope() : counters_(std::make_shared<MemoryCounters>()), outer_(current_scope) {
  current_scope = this;
}

MemoryScope::~MemoryScope() { current_scope = outer_; }

std::size_t MemoryScope::peak_bytes() const { return counters_->peak.load(); }
std::size_t MemoryScope::bytes_in_use() const { return counters_->in_use.load(); }

}  // namespace detr::core
