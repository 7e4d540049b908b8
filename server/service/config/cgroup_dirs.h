// Where this process's cgroup files are. A container with its own cgroup
// namespace sees its cgroup at the mount's root; a process without one (a
// systemd service, `docker run --cgroupns=host` on cgroup v1, a test put in a
// child group) finds its group under the path /proc/self/cgroup names. Limits
// are read from the process's own group first, then from the mount's root.
#pragma once

#include <string>
#include <vector>

namespace detr::service {

/// The directories to look in for a cgroup controller's files, most specific
/// first: the process's own v2 group, its own v1 group of `v1_controller`
/// ("memory", "cpu"), then the root's v2 files and the root's v1 controller.
/// `proc_self_cgroup` is for tests.
std::vector<std::string> CgroupDirs(const std::string& cgroup_root, const std::string& v1_controller,
                                    const std::string& proc_self_cgroup = "/proc/self/cgroup");

}  // namespace detr::service
