#include "server/service/access/grpc_access.h"

#include <string_view>

namespace detr::service {

absl::Status CheckAccess(const AccessControl& access, const grpc::CallbackServerContext* context) {
  const auto& metadata = context->client_metadata();
  const auto it = metadata.find("authorization");
  return access.Check(it == metadata.end() ? std::string_view()
                                           : std::string_view(it->second.data(), it->second.size()));
}

}  // namespace detr::service
