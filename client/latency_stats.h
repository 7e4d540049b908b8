// Percentiles of a set of latencies (seconds).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace detr::client {

struct LatencySummary {
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
  std::size_t count = 0;
};

/// Nearest-rank percentiles.
inline LatencySummary Summarize(std::vector<double> values) {
  LatencySummary s;
  s.count = values.size();
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  auto rank = [&](double q) {
    const auto index = static_cast<std::size_t>(std::max(0.0, std::ceil(q * values.size()) - 1));
    return values[std::min(index, values.size() - 1)];
  };
  s.p50 = rank(0.50);
  s.p90 = rank(0.90);
  s.p99 = rank(0.99);
  s.max = values.back();
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / values.size();
  return s;
}

}  // namespace detr::client
