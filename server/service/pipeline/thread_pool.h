// A fixed pool of threads running queued tasks (image decoding and
// preprocessing, kept off gRPC's and the model workers' threads). Its queue
// is bounded by whoever posts (the pipeline's admission); a task that throws
// is reported to `on_uncaught` and the pool keeps running.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace detr::service {

class ThreadPool {
 public:
  using Uncaught = std::function<void(const std::string& what)>;

  ThreadPool(int threads, Uncaught on_uncaught) : on_uncaught_(std::move(on_uncaught)) {
    for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { Loop(); });
  }
  /// Runs every task already posted, then joins.
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_) thread.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, and every posted task has run
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      Run(task);
      lock.lock();
    }
  }

  void Run(const std::function<void()>& task) noexcept {
    try {
      task();
    } catch (const std::exception& e) {
      if (on_uncaught_) on_uncaught_(e.what());
    } catch (...) {
      if (on_uncaught_) on_uncaught_("an exception that is not a std::exception");
    }
  }

  const Uncaught on_uncaught_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;  // guarded by mutex_
  bool stopping_ = false;                    // guarded by mutex_
  std::vector<std::thread> threads_;
};

}  // namespace detr::service
