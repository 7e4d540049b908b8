// Faults a test configuration asks for (server config `testing.inject_faults`):
// the pipeline throws at the named stages, so that tests can prove a failure
// anywhere becomes that request's INTERNAL status and the server keeps
// serving. Never set outside tests.
#pragma once

#include <set>
#include <stdexcept>
#include <string>

namespace detr::service {

class FaultInjection {
 public:
  /// The stages that can fail on purpose.
  static const std::set<std::string>& Stages() {
    static const std::set<std::string> stages = {"preprocess", "shadow", "forward", "postprocess"};
    return stages;
  }

  FaultInjection() = default;
  explicit FaultInjection(std::set<std::string> stages) : stages_(std::move(stages)) {}

  /// Throws std::runtime_error if `stage` is to fail.
  void At(const std::string& stage) const {
    if (stages_.count(stage)) throw std::runtime_error("fault injected at " + stage + " (testing.inject_faults)");
  }
  bool empty() const { return stages_.empty(); }

 private:
  std::set<std::string> stages_;
};

}  // namespace detr::service
