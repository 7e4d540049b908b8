#include "server/service/config/cpu_limit.h"

#include <sched.h>

#include <algorithm>
#include <fstream>
#include <thread>

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

}  // namespace

std::optional<int> CgroupCpuLimit(const std::string& cgroup_root) {
  std::ifstream v2(cgroup_root + "/cpu.max");
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
  std::ifstream v1_quota(cgroup_root + "/cpu/cpu.cfs_quota_us");
  std::ifstream v1_period(cgroup_root + "/cpu/cpu.cfs_period_us");
  double q = 0;
  if (v1_quota >> q && v1_period >> period) return CoresOf(q, period);
  return std::nullopt;
}

int IntraOpThreads(int configured, const std::string& cgroup_root) {
  if (configured > 0) return configured;
  const int cores = AllowedCores();
  const auto quota = CgroupCpuLimit(cgroup_root);
  return quota ? std::min(cores, *quota) : cores;
}

}  // namespace detr::service
