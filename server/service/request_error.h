// Errors on the request path, and their one mapping to gRPC status codes
// (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
#pragma once

#include <string>

#include <grpcpp/support/status.h>

namespace detr {

enum class ErrorKind {
  kInvalidArgument,   // the request itself is wrong: bad image, NaN threshold
  kNotFound,          // unknown model or experiment
  kQueueFull,         // the model's queue is at capacity: retry later
  kDraining,          // the server is shutting down
  kDeadlineExceeded,  // expired while queued: dropped before compute
  kCancelled,         // the client went away while queued
  kInternal,          // a bug or a failure of the model
};

struct RequestError {
  ErrorKind kind;
  std::string message;
};

grpc::StatusCode ToStatusCode(ErrorKind kind);
grpc::Status ToGrpcStatus(const RequestError& error);
/// "OK", "INVALID_ARGUMENT", ...: the label value of metrics.
const char* StatusCodeName(grpc::StatusCode code);

}  // namespace detr
