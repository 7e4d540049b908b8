// How many cores the server may use: a container sees every core of its
// node, but its cgroup's CPU quota (Kubernetes' CPU limit) is what it gets.
// intra_op_threads: 0 means this, so that a pod under a 4-CPU limit on a
// 64-core node runs 4 threads per forward pass, not 64 throttled ones.
#pragma once

#include <optional>
#include <string>

namespace detr::service {

/// The cgroup's CPU quota in cores, rounded up: cgroup v2's cpu.max
/// ("400000 100000" -> 4), else v1's cpu.cfs_quota_us / cpu.cfs_period_us;
/// the tightest of the process's own group and the mount's root
/// (cgroup_dirs.h). Nothing when unlimited ("max", -1) or unreadable.
std::optional<int> CgroupCpuLimit(const std::string& cgroup_root = "/sys/fs/cgroup",
                                  const std::string& proc_self_cgroup = "/proc/self/cgroup");

/// The intra-op thread count to run with: `configured` when positive, else
/// the cores this process may run on (its CPU affinity), capped by the
/// cgroup's quota.
int IntraOpThreads(int configured, const std::string& cgroup_root = "/sys/fs/cgroup");

}  // namespace detr::service
