// What queued work may know of the gRPC call it answers: whether the client
// has gone and when its deadline passes. The call's reactor and every job it
// queued share one CallState, so that nothing queued ever points into gRPC's
// per-call objects (a stream's context is gone once the stream is done,
// while its later frames may still wait in a model's queue).
#pragma once

#include <atomic>
#include <chrono>

namespace detr {

class CallState {
 public:
  using Deadline = std::chrono::system_clock::time_point;

  explicit CallState(Deadline deadline) : deadline_(deadline) {}

  /// The client cancelled, or the call is over: its queued work is dropped.
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  bool expired() const { return std::chrono::system_clock::now() > deadline_; }
  /// Nobody will read the answer: skip the work.
  bool abandoned() const { return cancelled() || expired(); }

 private:
  std::atomic<bool> cancelled_{false};
  const Deadline deadline_;
};

}  // namespace detr
