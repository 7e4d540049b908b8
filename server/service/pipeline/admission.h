// Admission to preprocessing, bounded in requests and in bytes: beyond
// either bound a request is refused at once (RESOURCE_EXHAUSTED) instead of
// queueing, so that a burst of large images cannot grow the server's memory
// before a model's queue capacity ever sees them.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>

namespace detr::service {

class Admission {
 public:
  /// Holds one request's place until destroyed or released.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept : admission_(other.admission_), bytes_(other.bytes_) { other.admission_ = nullptr; }
    Ticket& operator=(Ticket&& other) noexcept {
      if (this != &other) {
        Release();
        admission_ = other.admission_;
        bytes_ = other.bytes_;
        other.admission_ = nullptr;
      }
      return *this;
    }
    ~Ticket() { Release(); }
    void Release() {
      if (admission_ != nullptr) admission_->Return(bytes_);
      admission_ = nullptr;
    }

   private:
    friend class Admission;
    Ticket(Admission* admission, std::int64_t bytes) : admission_(admission), bytes_(bytes) {}
    Admission* admission_ = nullptr;
    std::int64_t bytes_ = 0;
  };

  Admission(std::int64_t max_requests, std::int64_t max_bytes) : max_requests_(max_requests), max_bytes_(max_bytes) {}

  /// A ticket for a request of `bytes`, or nothing when admitting it would
  /// pass a bound. A single request larger than max_bytes is admitted when
  /// nothing else is in (the message size limit bounds it already).
  std::optional<Ticket> TryAdmit(std::int64_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (requests_ >= max_requests_ || (requests_ > 0 && bytes_ + bytes > max_bytes_)) return std::nullopt;
    ++requests_;
    bytes_ += bytes;
    return Ticket(this, bytes);
  }

  std::int64_t max_requests() const { return max_requests_; }
  std::int64_t max_bytes() const { return max_bytes_; }

 private:
  void Return(std::int64_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    --requests_;
    bytes_ -= bytes;
  }

  const std::int64_t max_requests_, max_bytes_;
  std::mutex mutex_;
  std::int64_t requests_ = 0;  // guarded by mutex_
  std::int64_t bytes_ = 0;     // guarded by mutex_
};

}  // namespace detr::service
