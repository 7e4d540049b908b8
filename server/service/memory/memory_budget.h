// The server's memory budget: every part of the memory it will hold, sized
// from the configuration and the loaded models, checked against a limit (the
// configuration's, else the cgroup's) at start and on reload. docs/serving.md
// ("Memory") says what each part is.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "server/service/config/server_config.h"
#include "server/service/observability/metrics.h"
#include "server/service/pipeline/model_set.h"

namespace detr::service {

/// The model core's allocator as the server steers it (detr-server's main
/// wires it; tests may leave it empty: the cache is then not sized).
struct AllocatorControl {
  std::function<AllocatorFigures()> read;
  std::function<void(std::uint64_t)> set_cache_limit;
};

/// The process's resident bytes now (/proc/self/statm); 0 where unreadable.
std::uint64_t ResidentBytes();

/// The cgroup's memory limit: the tightest of v2's memory.max and v1's
/// memory.limit_in_bytes in the process's own group and at the mount's root
/// under `root` (cgroup_dirs.h); none when unlimited or absent.
std::optional<std::uint64_t> CgroupMemoryLimit(const std::string& root = "/sys/fs/cgroup",
                                               const std::string& proc_self_cgroup = "/proc/self/cgroup");

struct MemoryPart {
  std::string name;     ///< for people: "model 'r50' plans"
  std::string kind;     ///< the metric's part label: runtime, weights, plans, activations, queues, ...
  std::uint64_t bytes;  ///< 0 with `unsized`: a part the server cannot size
  bool unsized = false;
};

struct MemoryBudget {
  std::vector<MemoryPart> parts;
  std::uint64_t limit = 0;   ///< 0: none
  std::string limit_source;  ///< "limits.memory_limit_bytes", "cgroup memory.max" or ""
  std::uint64_t allocator_cache_bytes = 0;

  std::uint64_t total() const;
  /// "runtime 180 MB + model 'r50' weights 166 MB + ... = 2310 MB of 4096 MB (cgroup memory.max)".
  std::string Describe() const;
  /// Bytes by part label, summed, for detr_memory_budget_bytes.
  std::vector<std::pair<std::string, double>> ByKind() const;
};

/// Sizes every part: the runtime (`runtime_bytes`: libraries, code, static
/// data, stacks - the resident bytes before any model loaded, less what the
/// allocators then held), each model's weights, plans (at their capacity),
/// activations (workers x its largest warm-up pass) and queued inputs
/// (queue_capacity x its largest input), the preprocessing bound, and the
/// allocator's cache (limits.allocator_cache_bytes, else the models'
/// activations, at most 2 GiB; shrunk first when the rest would not fit).
/// `cgroup_root` is for tests.
MemoryBudget SizeMemoryBudget(const ServerConfig& config, const ModelSet& models, std::uint64_t runtime_bytes,
                              const std::string& cgroup_root = "/sys/fs/cgroup");

}  // namespace detr::service
