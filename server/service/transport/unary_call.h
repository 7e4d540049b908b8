// A unary call of the callback API whose CallState learns of the client's
// cancellation: what every front end's unary method hands the pipeline.
#pragma once

#include <memory>

#include <grpcpp/grpcpp.h>

#include "server/service/pipeline/call_state.h"

namespace detr::service {

class UnaryCall final : public grpc::ServerUnaryReactor {
 public:
  explicit UnaryCall(grpc::CallbackServerContext* context) : call_(std::make_shared<CallState>(context->deadline())) {}
  /// The same, with a deadline of its own when it comes sooner (a request's
  /// timeout parameter).
  UnaryCall(grpc::CallbackServerContext* context, CallState::Deadline deadline)
      : call_(std::make_shared<CallState>(std::min(context->deadline(), deadline))) {}
  std::shared_ptr<const CallState> call() const { return call_; }
  void OnCancel() override { call_->Cancel(); }
  void OnDone() override { delete this; }  // gRPC's reactor contract: the last event

 private:
  const std::shared_ptr<CallState> call_;
};

}  // namespace detr::service
