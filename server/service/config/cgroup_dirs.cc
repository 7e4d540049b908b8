#include "server/service/config/cgroup_dirs.h"

#include <fstream>
#include <sstream>

namespace detr::service {
namespace {

// "4:memory,memsw:/kubepods/pod1" -> true when `controller` is in the list.
bool NamesController(const std::string& controllers, const std::string& controller) {
  std::stringstream list(controllers);
  std::string name;
  while (std::getline(list, name, ',')) {
    if (name == controller) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> CgroupDirs(const std::string& cgroup_root, const std::string& v1_controller,
                                    const std::string& proc_self_cgroup) {
  std::string own_v2, own_v1;
  std::ifstream in(proc_self_cgroup);
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find(':');
    const auto second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const auto controllers = line.substr(first + 1, second - first - 1);
    const auto path = line.substr(second + 1);
    if (path.empty() || path == "/" || path.find("..") != std::string::npos) continue;
    if (line.compare(0, first, "0") == 0 && controllers.empty()) own_v2 = cgroup_root + path;
    if (NamesController(controllers, v1_controller)) own_v1 = cgroup_root + "/" + v1_controller + path;
  }
  std::vector<std::string> dirs;
  if (!own_v2.empty()) dirs.push_back(own_v2);
  if (!own_v1.empty()) dirs.push_back(own_v1);
  dirs.push_back(cgroup_root);
  dirs.push_back(cgroup_root + "/" + v1_controller);
  return dirs;
}

}  // namespace detr::service
