#include "server/service/memory/memory_budget.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "server/service/config/cgroup_dirs.h"

namespace detr::service {
namespace {

constexpr std::uint64_t kMiB = 1 << 20;
constexpr std::uint64_t kDefaultCacheCeiling = std::uint64_t{2} << 30;

std::string Megabytes(std::uint64_t bytes) { return std::to_string((bytes + kMiB / 2) / kMiB) + " MB"; }

// A model input's bytes: float planes and the padding mask.
std::uint64_t InputBytes(int height, int width) {
  return static_cast<std::uint64_t>(height) * static_cast<std::uint64_t>(width) * (3 * sizeof(float) + 1);
}

// The largest input a model's preprocessing makes; 0 when unbounded.
std::uint64_t LargestInputBytes(const PreprocessingConfig& p) {
  std::uint64_t largest = 0;
  for (const auto& shape : p.InputShapes()) largest = std::max(largest, InputBytes(shape.height, shape.width));
  if (largest == 0 && p.shortest_edge > 0 && p.longest_edge > 0) {
    // Unpadded: at most shortest x longest, and past 2:1 a few pixels more.
    largest = InputBytes(p.shortest_edge, std::max(p.shortest_edge, p.longest_edge) + 1);
  }
  return largest;
}

std::optional<std::uint64_t> ReadLimit(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return std::nullopt;
  try {
    const auto bytes = std::stoull(text);
    // cgroup v1 reports "unlimited" as a page-rounded maximum.
    if (bytes >= (std::uint64_t{1} << 60)) return std::nullopt;
    return bytes;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

std::uint64_t ResidentBytes() {
  long pages_total = 0, pages_resident = 0;
  std::ifstream("/proc/self/statm") >> pages_total >> pages_resident;
  return static_cast<std::uint64_t>(pages_resident) * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

std::optional<std::uint64_t> CgroupMemoryLimit(const std::string& root, const std::string& proc_self_cgroup) {
  // The tightest limit of the process's own group and the mount's root (an
  // ancestor): a group inherits its parents' limits.
  std::optional<std::uint64_t> tightest;
  for (const auto& dir : CgroupDirs(root, "memory", proc_self_cgroup)) {
    for (const char* file : {"/memory.max", "/memory.limit_in_bytes"}) {
      if (const auto limit = ReadLimit(dir + file); limit && (!tightest || *limit < *tightest)) tightest = limit;
    }
  }
  return tightest;
}

std::uint64_t MemoryBudget::total() const {
  std::uint64_t sum = 0;
  for (const auto& part : parts) sum += part.bytes;
  return sum;
}

std::string MemoryBudget::Describe() const {
  std::string text;
  for (const auto& part : parts) {
    if (!text.empty()) text += " + ";
    text += part.name + " " + (part.unsized ? "(not sized)" : Megabytes(part.bytes));
  }
  text += " = " + Megabytes(total());
  text += limit > 0 ? " of " + Megabytes(limit) + " (" + limit_source + ")" : " (no memory limit)";
  return text;
}

std::vector<std::pair<std::string, double>> MemoryBudget::ByKind() const {
  std::map<std::string, double> sums;
  for (const auto& part : parts) sums[part.kind] += static_cast<double>(part.bytes);
  return {sums.begin(), sums.end()};
}

MemoryBudget SizeMemoryBudget(const ServerConfig& config, const ModelSet& models, std::uint64_t runtime_bytes,
                              const std::string& cgroup_root) {
  MemoryBudget budget;
  if (config.memory_limit_bytes > 0) {
    budget.limit = static_cast<std::uint64_t>(config.memory_limit_bytes);
    budget.limit_source = "limits.memory_limit_bytes";
  } else if (const auto cgroup = CgroupMemoryLimit(cgroup_root)) {
    budget.limit = *cgroup;
    budget.limit_source = "cgroup memory.max";
  }
  budget.parts.push_back({"runtime", "runtime", runtime_bytes});
  std::uint64_t activations = 0;
  bool all_sized = true;
  for (const auto& entry : config.models) {
    const auto* runner = models.Find(entry.name);
    if (runner == nullptr) continue;
    const std::string model = "model '" + entry.name + "' ";
    const auto held = runner->memory();
    budget.parts.push_back({model + "weights", "weights", held.weight_bytes});
    // Plans not built yet (inputs of each image's own size) count at capacity.
    const std::uint64_t plans = held.plans > 0
                                    ? held.plan_bytes / static_cast<std::uint64_t>(held.plans) *
                                          static_cast<std::uint64_t>(std::max(held.plans, held.plan_capacity))
                                    : 0;
    budget.parts.push_back({model + "plans", "plans", plans, held.plan_capacity > 0 && held.plans == 0});
    const auto pass = runner->pass_peak_bytes() * static_cast<std::uint64_t>(entry.batching.workers);
    budget.parts.push_back({model + "activations", "activations", pass, pass == 0});
    all_sized = all_sized && pass > 0;
    activations += pass;
    budget.parts.push_back(
        {model + "queued inputs", "queues",
         static_cast<std::uint64_t>(entry.batching.queue_capacity) * LargestInputBytes(entry.preprocessing)});
  }
  // Requests being decoded: their encoded bytes, and each thread's decoded image.
  budget.parts.push_back(
      {"preprocessing", "preprocessing",
       static_cast<std::uint64_t>(config.max_preprocessing_bytes) +
           static_cast<std::uint64_t>(config.preprocess_threads) * static_cast<std::uint64_t>(config.max_pixels) * 3});
  if (config.allocator_cache_bytes > 0) {
    budget.allocator_cache_bytes = static_cast<std::uint64_t>(config.allocator_cache_bytes);
  } else {
    // The cache holds what passes freed: the models' activations, when every
    // model's are known; else the ceiling. It is what shrinks under a limit.
    budget.allocator_cache_bytes = all_sized ? std::min(activations, kDefaultCacheCeiling) : kDefaultCacheCeiling;
    if (budget.limit > 0) {
      const auto rest = budget.total();
      const auto room = budget.limit > rest ? budget.limit - rest : 0;
      budget.allocator_cache_bytes = std::min(budget.allocator_cache_bytes, room);
    }
  }
  budget.parts.push_back({"allocator cache", "allocator_cache", budget.allocator_cache_bytes});
  return budget;
}

}  // namespace detr::service
