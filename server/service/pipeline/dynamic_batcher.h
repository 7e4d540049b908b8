// A bounded request queue per model whose workers take batches of requests
// with equal input shapes. Torch-free and templated on the item, so that its
// timing is tested with a fake, slow workload.
//
// A batch takes only items whose shape key equals the oldest item's: padding
// images of different sizes into one tensor would change their results
// (DETR's convolutions see the padding), so a result never depends on what it
// was batched with. A batch closes when it has max_batch_size items or when
// its oldest item has waited max_queue_delay.
//
// Admission looks at the deadline too: an item that would wait behind the
// queue longer than its deadline allows, at the pace of recent batches, is
// refused at once (kLate) instead of queueing only to expire. On a slower CPU
// a full queue takes longer to drain than a client waits; refusing such work
// early keeps every admitted request's latency within its deadline and tells
// the client to back off while it still can.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace detr::service {

template <typename Item>
class DynamicBatcher {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::size_t max_batch_size = 8;
    std::chrono::microseconds max_queue_delay{5000};
    std::size_t queue_capacity = 64;
    int workers = 1;
  };

  struct Hooks {
    std::function<std::string(const Item&)> shape_key;  // items batch together iff keys are equal
    std::function<bool(const Item&)> abandoned;         // cancelled or past its deadline: skip compute
    std::function<void(Item&&)> drop;                   // told about a skipped item
    std::function<void(std::vector<Item>&&)> run;       // computes one batch
    std::function<void(const std::string&)> uncaught;   // told what run or drop threw (they should not)
  };

  DynamicBatcher(Options options, Hooks hooks) : options_(options), hooks_(std::move(hooks)) {
    if (options_.max_batch_size == 0) options_.max_batch_size = 1;
    for (int i = 0; i < std::max(1, options_.workers); ++i) workers_.emplace_back([this] { WorkLoop(); });
  }

  ~DynamicBatcher() { Stop(); }
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  enum class Admitted { kQueued, kFull, kLate, kStopped };

  /// Queues `item` (kQueued), or leaves it untouched when the queue is at
  /// capacity (kFull), when items are queued ahead of it and, at the pace of
  /// recent batches, computing it would take more than half the time left to
  /// `deadline` (kLate: the other half is the margin for the estimate's error
  /// and for the work after the queue; admitted at the deadline's very edge,
  /// requests were answered just before it or just after), or
  /// when the batcher is stopping (kStopped). An item alone in the queue is
  /// always taken: whether it makes its deadline is its own cost, not load.
  ///
  /// Before refusing for load, the queue sheds its abandoned items (their
  /// clients cancelled or their deadlines passed; they are dropped, here,
  /// outside the lock): a burst of cancelled work must not make the queue
  /// look full or slow to the requests that are still wanted.
  Admitted TryEnqueue(Item& item, Clock::time_point deadline = Clock::time_point::max()) {
    std::vector<Item> shed;
    Admitted admitted = Admitted::kQueued;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return Admitted::kStopped;
      admitted = AdmitLocked(deadline);
      if (admitted != Admitted::kQueued) {
        shed = TakeAbandonedLocked();
        if (!shed.empty()) admitted = AdmitLocked(deadline);
      }
      if (admitted == Admitted::kQueued) queue_.push_back(Entry{hooks_.shape_key(item), Clock::now(), std::move(item)});
    }
    if (admitted == Admitted::kQueued) wake_.notify_all();
    DropAll(std::move(shed));
    return admitted;
  }

  std::size_t depth() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.size();
  }

  /// How long an item queued now would take until it is computed: the queue
  /// ahead of it and itself, at the recent seconds per item over the
  /// workers; zero before the first batch.
  Clock::duration ExpectedWait() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return ExpectedWaitLocked();
  }

  /// Stops taking items, computes those already queued, joins the workers.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_ && workers_.empty()) return;
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& worker : workers_) {
      if (worker.joinable()) worker.join();
    }
    workers_.clear();
  }

 private:
  struct Entry {
    std::string key;
    Clock::time_point enqueued;
    Item item;
  };

  Admitted AdmitLocked(Clock::time_point deadline) const {
    if (queue_.size() >= options_.queue_capacity) return Admitted::kFull;
    if (!queue_.empty() && deadline != Clock::time_point::max() && deadline - Clock::now() < 2 * ExpectedWaitLocked()) {
      return Admitted::kLate;
    }
    return Admitted::kQueued;
  }

  // Removes the abandoned entries, in order, for the caller to drop.
  std::vector<Item> TakeAbandonedLocked() {
    std::vector<Item> abandoned;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (hooks_.abandoned(it->item)) {
        abandoned.push_back(std::move(it->item));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    return abandoned;
  }

  Clock::duration ExpectedWaitLocked() const {
    const double items = static_cast<double>(queue_.size() + 1);
    const double seconds = items * seconds_per_item_ / static_cast<double>(std::max(1, options_.workers));
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }

  // The pace of recent batches: an exponential average of each batch's
  // seconds per item (a full batch costs less per item than a single one, so
  // under load, when batches fill, the estimate follows them down).
  void RecordPace(Clock::duration took, std::size_t items) {
    const double per_item = std::chrono::duration<double>(took).count() / static_cast<double>(items);
    std::lock_guard<std::mutex> lock(mutex_);
    seconds_per_item_ = seconds_per_item_ == 0 ? per_item : 0.8 * seconds_per_item_ + 0.2 * per_item;
  }

  std::size_t CountKey(const std::string& key) const {
    std::size_t n = 0;
    for (const auto& entry : queue_) n += entry.key == key;
    return n;
  }

  // Removes up to max_batch_size entries with the oldest entry's key, in order.
  std::vector<Item> TakeBatch() {
    const std::string key = queue_.front().key;
    std::vector<Item> batch;
    for (auto it = queue_.begin(); it != queue_.end() && batch.size() < options_.max_batch_size;) {
      if (it->key == key) {
        batch.push_back(std::move(it->item));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    return batch;
  }

  void WorkLoop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      // Wait for the oldest item's batch to fill, at most until its delay is up.
      const auto close_at = queue_.front().enqueued + options_.max_queue_delay;
      while (!stopping_ && !queue_.empty() && CountKey(queue_.front().key) < options_.max_batch_size &&
             Clock::now() < close_at) {
        wake_.wait_until(lock, close_at);
      }
      if (queue_.empty()) continue;  // another worker took it
      auto batch = TakeBatch();
      lock.unlock();
      Dispatch(std::move(batch));
      lock.lock();
    }
  }

  // Runs a hook's work; a worker (or an enqueuing thread) must survive
  // whatever a hook throws: it would end the process.
  template <typename Work>
  void Survive(Work&& work) noexcept {
    try {
      work();
    } catch (const std::exception& e) {
      if (hooks_.uncaught) hooks_.uncaught(e.what());
    } catch (...) {
      if (hooks_.uncaught) hooks_.uncaught("an exception that is not a std::exception");
    }
  }

  void Dispatch(std::vector<Item> batch) noexcept {
    Survive([&] { DispatchLive(std::move(batch)); });
  }

  void DropAll(std::vector<Item> items) noexcept {
    for (auto& item : items) Survive([&] { hooks_.drop(std::move(item)); });
  }

  void DispatchLive(std::vector<Item> batch) {
    std::vector<Item> live;
    live.reserve(batch.size());
    for (auto& item : batch) {
      if (hooks_.abandoned(item)) {
        hooks_.drop(std::move(item));
      } else {
        live.push_back(std::move(item));
      }
    }
    if (live.empty()) return;
    const auto start = Clock::now();
    const std::size_t items = live.size();
    hooks_.run(std::move(live));
    RecordPace(Clock::now() - start, items);
  }

  Options options_;
  Hooks hooks_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Entry> queue_;      // guarded by mutex_
  bool stopping_ = false;        // guarded by mutex_
  double seconds_per_item_ = 0;  // guarded by mutex_
  std::vector<std::thread> workers_;
};

}  // namespace detr::service
