#include "server/core/runtime/cpu_allocator.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <new>

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
  static std::shared_ptr<MemoryCounters> Current() {
    return current_scope ? current_scope->counters_ : nullptr;
  }
};

struct CachingCpuAllocator::State {
  explicit State(Options o) : options(o) {}
  ~State() { Release(); }

  void* Take(std::size_t bytes) {
    if (bytes >= options.min_cached_block) {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = free_blocks.find(bytes);
      if (it != free_blocks.end()) {
        void* data = it->second;
        free_blocks.erase(it);
        cached -= bytes;
        return data;
      }
    }
    return c10::alloc_cpu(bytes);
  }

  void Give(void* data, std::size_t bytes) {
    if (bytes >= options.min_cached_block) {
      std::lock_guard<std::mutex> lock(mutex);
      if (cached + bytes <= options.max_cached_bytes) {
        free_blocks.emplace(bytes, data);
        cached += bytes;
        return;
      }
    }
    c10::free_cpu(data);
  }

  void Release() {
    std::multimap<std::size_t, void*> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex);
      blocks.swap(free_blocks);
      cached = 0;
    }
    for (auto& [bytes, data] : blocks) c10::free_cpu(data);
  }

  const Options options;
  MemoryCounters totals;
  std::mutex mutex;
  std::multimap<std::size_t, void*> free_blocks;  // guarded by mutex
  std::size_t cached = 0;                         // guarded by mutex
};

namespace {

// Each allocation carries its bookkeeping in a header just before the data:
// oneDNN allocates through raw_allocate(), which requires the deleter context
// to be the data pointer itself. 64 bytes keep the data 64-byte aligned.
struct BlockHeader {
  std::size_t bytes;
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
  auto state = std::move(header->state);
  auto scope = std::move(header->scope);
  header->~BlockHeader();
  state->totals.Remove(bytes);
  if (scope) scope->Remove(bytes);
  state->Give(base, bytes + kHeaderBytes);
}

}  // namespace

CachingCpuAllocator::CachingCpuAllocator() : CachingCpuAllocator(Options{}) {}
CachingCpuAllocator::CachingCpuAllocator(Options options) : state_(std::make_shared<State>(options)) {}
CachingCpuAllocator::~CachingCpuAllocator() { state_->Release(); }

c10::DataPtr CachingCpuAllocator::allocate(std::size_t bytes) const {
  auto* base = static_cast<char*>(state_->Take(bytes + kHeaderBytes));
  auto scope = ScopeAccess::Current();
  if (scope) scope->Add(bytes);
  state_->totals.Add(bytes);
  new (base) BlockHeader{bytes, state_, std::move(scope)};
  void* data = base + kHeaderBytes;
  return {data, data, &DeleteBlock, c10::Device(c10::DeviceType::CPU)};
}

c10::DeleterFnPtr CachingCpuAllocator::raw_deleter() const { return &DeleteBlock; }

std::size_t CachingCpuAllocator::bytes_in_use() const { return state_->totals.in_use.load(); }
std::size_t CachingCpuAllocator::peak_bytes() const { return state_->totals.peak.load(); }
void CachingCpuAllocator::ResetPeak() { state_->totals.peak.store(state_->totals.in_use.load()); }
void CachingCpuAllocator::ReleaseCache() { state_->Release(); }

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
