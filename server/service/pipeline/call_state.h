// What queued work may know of the call it answers: whether the client has
// gone and when its deadline passes. A front end's call (a gRPC reactor, an
// HTTP request) and every job it queued share one CallState, so that nothing
// queued ever points into a front end's per-call objects (a gRPC stream's
// context is gone once the stream is done, while its later frames may still
// wait in a model's queue).
#pragma once

#include <atomic>
#include <chrono>

#include <absl/status/status.h>

namespace detr::service {

class CallState {
 public:
  using Deadline = std::chrono::system_clock::time_point;

  explicit CallState(Deadline deadline = Deadline::max()) : deadline_(deadline) {}

  /// The client cancelled, or the call is over: its queued work is dropped.
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  bool expired() const { return std::chrono::system_clock::now() > deadline_; }
  Deadline deadline() const { return deadline_; }
  /// Nobody will read the answer: skip the work.
  bool abandoned() const { return cancelled() || expired(); }

  /// OK while someone waits for the answer; else CANCELLED or
  /// DEADLINE_EXCEEDED, saying what happened to the work at `stage`.
  absl::Status Check(const char* stage) const {
    if (cancelled()) return absl::CancelledError(std::string("the client cancelled; the request was dropped ") + stage);
    if (expired())
      return absl::DeadlineExceededError(std::string("the deadline passed; the request was dropped ") + stage);
    return absl::OkStatus();
  }

 private:
  std::atomic<bool> cancelled_{false};
  const Deadline deadline_;
};

}  // namespace detr::service
