#include "server/service/memory/memory_pressure.h"

#include <malloc.h>

namespace detr::service {

MemoryPressureWatch::MemoryPressureWatch(Options options) : options_(std::move(options)) {
  if (options_.period.count() > 0) thread_ = std::thread([this] { Run(); });
}

MemoryPressureWatch::~MemoryPressureWatch() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stop_signal_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MemoryPressureWatch::SetBudget(std::uint64_t limit, std::uint64_t cache_bytes) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = limit;
    cache_bytes_ = cache_bytes;
    shrunk_ = false;  // the caller has just set the cache to its budgeted size
  }
  stop_signal_.notify_all();  // wakes a watch that slept for want of a limit
}

bool MemoryPressureWatch::Check() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (limit_ == 0 || !options_.resident_bytes) return false;
  const auto resident = static_cast<double>(options_.resident_bytes());
  const auto limit = static_cast<double>(limit_);
  if (!shrunk_ && resident > options_.high * limit) {
    if (options_.set_cache_limit) options_.set_cache_limit(0);  // returns every cached block
    malloc_trim(0);
    shrunk_ = true;
    if (options_.on_shrink) options_.on_shrink();
    return true;
  }
  if (shrunk_ && resident < options_.low * limit) {
    if (options_.set_cache_limit) options_.set_cache_limit(cache_bytes_);
    shrunk_ = false;
  }
  return false;
}

bool MemoryPressureWatch::shrunk() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return shrunk_;
}

void MemoryPressureWatch::Run() {
  std::unique_lock<std::mutex> lock(mutex_);
  // Without a limit there is nothing to watch: the thread sleeps until a
  // reload sets one (or the watch stops), and never wakes every period.
  while (!stop_signal_.wait_for(lock, options_.period, [this] { return stopping_; })) {
    stop_signal_.wait(lock, [this] { return stopping_ || limit_ != 0; });
    if (stopping_) break;
    lock.unlock();
    Check();
    lock.lock();
  }
}

}  // namespace detr::service
