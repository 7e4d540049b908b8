#include "server/service/frontend/detect_stream_reactor.h"

#include "server/service/frontend/detector_messages.h"
#include "server/service/status_mapping.h"

namespace detr::service {

DetectStreamReactor::DetectStreamReactor(RequestPipeline& pipeline, grpc::CallbackServerContext* context)
    : pipeline_(pipeline), call_(std::make_shared<CallState>(context->deadline())) {
  StartRead(&request_);
}

void DetectStreamReactor::OnReadDone(bool ok) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!ok || finished_) {  // the client half-closed (or the call is over)
    reads_done_ = true;
    const auto action = NextAction();
    lock.unlock();
    Perform(action);
    return;
  }
  const std::uint64_t sequence = next_read_++;
  ++in_flight_;
  v1::DetectRequest frame = std::move(request_);
  lock.unlock();
  StartRead(&request_);  // read the next frame while this one runs
  pipeline_.Run(ToDetectInput(std::move(frame)), call_,
                [this, sequence](absl::StatusOr<DetectResult> result) { OnResult(sequence, std::move(result)); });
}

void DetectStreamReactor::OnResult(std::uint64_t sequence, absl::StatusOr<DetectResult> result) {
  Result ready{ToGrpcStatus(result.status()), {}};
  if (result.ok()) ToDetectResponse(std::move(*result), &ready.response);
  std::unique_lock<std::mutex> lock(mutex_);
  --in_flight_;
  ready_.emplace(sequence, std::move(ready));
  const auto action = done_ ? Action::kNone : NextAction();
  if (done_) {
    ReleaseIfDone(lock);  // may delete this
    return;
  }
  lock.unlock();
  Perform(action);
}

void DetectStreamReactor::OnWriteDone(bool ok) {
  std::unique_lock<std::mutex> lock(mutex_);
  writing_ = false;
  if (!ok && !finished_) {  // the client is gone
    finished_ = true;
    lock.unlock();
    call_->Cancel();
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
    return;
  }
  const auto action = NextAction();
  lock.unlock();
  Perform(action);
}

DetectStreamReactor::Action DetectStreamReactor::NextAction() {
  if (finished_ || writing_) return Action::kNone;
  const auto next = ready_.find(next_write_);
  if (next != ready_.end()) {
    if (!next->second.status.ok()) {  // a failed frame ends the stream with its status
      final_status_ = next->second.status;
      finished_ = true;
      return Action::kFinish;
    }
    write_buffer_ = std::move(next->second.response);
    ready_.erase(next);
    ++next_write_;
    writing_ = true;
    return Action::kWrite;
  }
  if (reads_done_ && in_flight_ == 0 && ready_.empty()) {
    final_status_ = grpc::Status::OK;
    finished_ = true;
    return Action::kFinish;
  }
  return Action::kNone;
}

void DetectStreamReactor::Perform(Action action) {
  if (action == Action::kWrite) StartWrite(&write_buffer_);
  if (action == Action::kFinish) {
    call_->Cancel();  // frames still queued have nobody to answer
    Finish(final_status_);
  }
}

void DetectStreamReactor::OnCancel() { call_->Cancel(); }

void DetectStreamReactor::OnDone() {
  call_->Cancel();
  std::unique_lock<std::mutex> lock(mutex_);
  done_ = true;
  ReleaseIfDone(lock);
}

// The reactor may only go once gRPC is done with it and no frame it
// submitted can still call back.
void DetectStreamReactor::ReleaseIfDone(std::unique_lock<std::mutex>& lock) {
  if (!done_ || in_flight_ > 0) return;
  lock.unlock();
  delete this;
}

}  // namespace detr::service
