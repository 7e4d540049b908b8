// The canonical status codes' names (gRPC's and Abseil's codes are the same
// numbers: https://grpc.github.io/grpc/core/md_doc_statuscodes.html), in one
// table for the server's metrics and logs and the client's reports.
#pragma once

namespace detr {

/// "OK", "CANCELLED", ..., "UNAUTHENTICATED"; "UNKNOWN" for any other number.
const char* StatusCodeName(int code);

}  // namespace detr
