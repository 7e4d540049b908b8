#include "server/service/config/cpu_limit.h"

#include <sched.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include "server/service/config/cgroup_dirs.h"

namespace detr::service {
namespace {

std::optional<int> CoresOf(double quota, double period) {
  if (quota <= 0 || period <= 0) return std::nullopt;
  const double cores = quota / period;
  return std::max(1, static_cast<int>(cores + 0.999));  // 2.5 cores: 3 threads, the last one part-time
}

int AllowedCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// One group's quota: v2's cpu.max, else v1's cfs files.
std::optional<int> QuotaIn(const std::string& dir) {
  std::ifstream v2(dir + "/cpu.max");
  std::string quota;
  double period = 0;
  if (v2 >> quota >> period) {
    if (quota == "max") return std::nullopt;
    try {
      return CoresOf(std::stod(quota), period);
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  std::ifstream v1_quota(dir + "/cpu.cfs_quota_us");
  std::ifstream v1_period(dir + "/cpu.cfs_period_us");
  double q = 0;
  if (v1_quota >> q && v1_period >> period) return CoresOf(q, period);
  return std::nullopt;
}

}  // namespace

std::optional<int> CgroupCpuLimit(const std::string& cgroup_root, const std::string& proc_self_cgroup) {
  std::optional<int> tightest;
  for (const auto& dir : CgroupDirs(cgroup_root, "cpu", proc_self_cgroup)) {
    if (const auto cores = QuotaIn(dir); cores && (!tightest || *cores < *tightest)) tightest = cores;
  }
  return tightest;
}

int IntraOpThreads(int configured, const std::string& cgroup_root) {
  if (configured > 0) return configured;
  const int cores = AllowedCores();
  const auto quota = CgroupCpuLimit(cgroup_root);
  return quota ? std::min(cores, *quota) : cores;
}

}  // namespace detr::service
