// The bearer-token check of every gRPC front end, in one function: detr.v1's
// methods and the Open Inference Protocol's each call it first.
//
// Why not a server interceptor or an AuthMetadataProcessor: gRPC 1.51's
// server interceptors cannot end a call with UNAUTHENTICATED (only cancel
// it), and an AuthMetadataProcessor is not supported on insecure
// credentials (grpc/grpc#21589), which tokens behind a TLS-terminating mesh
// need (`auth: {allow_plaintext: true}`).
#pragma once

#include <absl/status/status.h>
#include <grpcpp/server_context.h>

#include "server/service/access/bearer_tokens.h"

namespace detr::service {

/// The caller's "authorization" metadata checked against the tokens in force.
absl::Status CheckAccess(const AccessControl& access, const grpc::CallbackServerContext* context);

}  // namespace detr::service
