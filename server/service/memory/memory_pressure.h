// Under memory pressure the caches shrink first. The budget (memory_budget.h)
// sizes every part at start, but plans of unpadded shapes, malloc's free
// lists and oneDNN's own caches can still carry resident memory toward the
// limit. A thread samples the resident bytes; past `high` of the limit it
// empties the allocator's cache and returns malloc's free pages, so that a
// forward pass meets the limit only with memory it really needs; once below
// `low` it gives the cache its budgeted size back.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace detr::service {

class MemoryPressureWatch {
 public:
  struct Options {
    std::chrono::milliseconds period{200};
    double high = 0.90;  ///< of the limit: shrink the caches above this
    double low = 0.80;   ///< of the limit: restore the cache below this
    std::function<std::uint64_t()> resident_bytes;
    std::function<void(std::uint64_t)> set_cache_limit;  ///< may be empty: then only malloc is trimmed
    std::function<void()> on_shrink;                     ///< counts and logs each shrink
  };

  /// Starts the sampling thread; `Check` alone (tests) works without it when
  /// period is zero.
  explicit MemoryPressureWatch(Options options);
  ~MemoryPressureWatch();
  MemoryPressureWatch(const MemoryPressureWatch&) = delete;
  MemoryPressureWatch& operator=(const MemoryPressureWatch&) = delete;

  /// The limit and the cache's budgeted size (at start and on reload); a
  /// limit of 0 turns the watch off.
  void SetBudget(std::uint64_t limit, std::uint64_t cache_bytes);
  /// One sample; true when it shrank the caches.
  bool Check();
  bool shrunk() const;

 private:
  void Run();

  Options options_;
  mutable std::mutex mutex_;
  std::condition_variable stop_signal_;
  bool stopping_ = false;          // guarded by mutex_
  std::uint64_t limit_ = 0;        // guarded by mutex_
  std::uint64_t cache_bytes_ = 0;  // guarded by mutex_
  bool shrunk_ = false;            // guarded by mutex_
  std::thread thread_;             // last: starts after the rest is set
};

}  // namespace detr::service
