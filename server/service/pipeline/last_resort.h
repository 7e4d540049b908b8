// The pipeline's last-resort net. Every step of a request reports what is
// wrong with the request as an absl::Status (decoding, validation, routing,
// admission); what reaches this net is an exception no step expected: a bug,
// or the machine out of memory. It becomes the request's INTERNAL status, never
// INVALID_ARGUMENT (not the client's fault, whatever the exception's type), so
// that the request is answered and the server keeps serving.
#pragma once

#include <exception>
#include <string>

#include <absl/status/status.h>

namespace detr::service {

/// Runs `step`; OK if it returns, INTERNAL naming `stage` if it throws.
template <typename Step>
absl::Status LastResort(const char* stage, Step&& step) {
  try {
    step();
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::InternalError(std::string("internal error in ") + stage + " (a bug; please report it): " + e.what());
  } catch (...) {
    return absl::InternalError(std::string("internal error in ") + stage + " (a bug; please report it)");
  }
}

}  // namespace detr::service
