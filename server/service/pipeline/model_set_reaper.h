// Destroys model sets that no request uses any more, on a thread of its own.
//
// Why: a request holds the model set it was routed by until it is answered,
// so a set that the pipeline has let go of (replaced on reload, or at
// shutdown) lives on in its last requests, and the last of them usually
// finishes on one of the set's own model workers. Destroying the set there
// would make that worker join itself (std::system_error, "Resource deadlock
// avoided"); destroying it here waits for its workers instead.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "server/service/pipeline/model_set.h"

namespace detr::service {

class ModelSetReaper {
 public:
  ModelSetReaper() : thread_([this] { Loop(); }) {}
  /// Waits until every retired set is unused and destroyed.
  ~ModelSetReaper() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  ModelSetReaper(const ModelSetReaper&) = delete;
  ModelSetReaper& operator=(const ModelSetReaper&) = delete;

  /// Takes the caller's reference to `set`; the set is destroyed, here,
  /// once nobody else holds it.
  void Retire(std::shared_ptr<const ModelSet> set) {
    if (!set) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      retired_.push_back(std::move(set));
    }
    wake_.notify_all();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      // Requests let go without telling anyone: look again every 20 ms
      // while something waits.
      wake_.wait_for(lock, std::chrono::milliseconds(20), [this] { return stopping_ || !retired_.empty(); });
      std::vector<std::shared_ptr<const ModelSet>> unused;
      for (auto it = retired_.begin(); it != retired_.end();) {
        if (it->use_count() == 1) {  // only this list: no request can take it again
          unused.push_back(std::move(*it));
          it = retired_.erase(it);
        } else {
          ++it;
        }
      }
      const bool done = stopping_ && retired_.empty();
      lock.unlock();
      unused.clear();  // stops the sets' runners, which finish their queues first
      if (done) return;
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::shared_ptr<const ModelSet>> retired_;  // guarded by mutex_
  bool stopping_ = false;                                 // guarded by mutex_
  std::thread thread_;                                    // last: runs Loop on what is above
};

}  // namespace detr::service
