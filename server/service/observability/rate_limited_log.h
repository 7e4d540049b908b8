// A budget for log lines that clients cause (failed requests): at most
// `per_second` lines a second on average, bursts of up to `burst`. Lines over
// the budget are dropped and counted; the count goes out with the next line
// that is logged. A client sending junk as fast as it can thus grows the log
// by a bounded rate, not by one line per request.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace detr::service {

class RateLimitedLog {
 public:
  RateLimitedLog(double per_second, double burst) : per_second_(per_second), burst_(burst), tokens_(burst) {}

  /// True when a line may be logged now; then `suppressed` is the number of
  /// lines dropped since the last one logged.
  bool Allow(std::uint64_t& suppressed) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    tokens_ = std::min(burst_, tokens_ + per_second_ * std::chrono::duration<double>(now - last_).count());
    last_ = now;
    if (tokens_ < 1) {
      ++suppressed_;
      return false;
    }
    tokens_ -= 1;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  const double per_second_, burst_;
  std::mutex mutex_;
  double tokens_;                                                                  // guarded by mutex_
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();  // guarded by mutex_
  std::uint64_t suppressed_ = 0;                                                   // guarded by mutex_
};

}  // namespace detr::service
