// The request path's errors are absl::Status values (Abseil comes with gRPC),
// with the canonical codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html):
//   INVALID_ARGUMENT   the request itself is wrong: bad image, NaN threshold, long strings
//   NOT_FOUND          unknown model or experiment
//   RESOURCE_EXHAUSTED a model's queue or the preprocessing admission is full: retry later
//   UNAVAILABLE        the server is shutting down
//   DEADLINE_EXCEEDED  expired while queued: dropped before compute
//   CANCELLED          the client went away while queued
//   INTERNAL           a failure of the server or the model
// This file maps them, in one place, to what each front end answers.
#pragma once

#include <absl/status/status.h>
#include <grpcpp/support/status.h>

namespace detr::service {

/// The same code (gRPC's numbers are Abseil's) and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

/// "OK", "INVALID_ARGUMENT", ...: metric label values and log text.
const char* StatusCodeName(absl::StatusCode code);

/// The HTTP status of an error answered over HTTP (the Open Inference
/// Protocol's REST binding): 400, 404, 429, 503, 504, 499, 500, ...
int HttpStatus(absl::StatusCode code);

}  // namespace detr::service
