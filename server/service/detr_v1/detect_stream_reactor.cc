#include "server/service/detr_v1/detect_stream_reactor.h"

#include "server/service/detr_v1/detector_messages.h"
#include "server/service/status_mapping.h"

namespace detr::service {

DetectStreamReactor::DetectStreamReactor(RequestPipeline& pipeline, grpc::CallbackServerContext* context)
    : pipeline_(pipeline), state_(std::make_shared<State>()) {
  state_->call = std::make_shared<CallState>(context->deadline());
  state_->reactor = this;
  StartRead(&request_);
}

void DetectStreamReactor::OnReadDone(bool ok) {
  std::unique_lock<std::mutex> lock(state_->mutex);
  if (!ok || state_->finished) {  // the client half-closed (or the call is over)
    state_->reads_done = true;
    const auto action = NextAction();
    lock.unlock();
    Perform(action);
    return;
  }
  const std::uint64_t sequence = state_->next_read++;
  ++state_->in_flight;
  v1::DetectRequest frame = std::move(request_);
  lock.unlock();
  StartRead(&request_);  // read the next frame while this one runs
  pipeline_.Run(ToDetectInput(std::move(frame)), state_->call,
                [state = state_, sequence](absl::StatusOr<DetectResult> result) {
                  OnResult(state, sequence, std::move(result));
                });
}

void DetectStreamReactor::OnResult(const std::shared_ptr<State>& state, std::uint64_t sequence,
                                   absl::StatusOr<DetectResult> result) {
  Result ready{ToGrpcStatus(result.status()), {}};
  if (result.ok()) ToDetectResponse(std::move(*result), &ready.response);
  std::unique_lock<std::mutex> lock(state->mutex);
  --state->in_flight;
  DetectStreamReactor* reactor = state->reactor;
  if (reactor == nullptr) return;  // the stream is over: nobody reads this answer
  state->ready.emplace(sequence, std::move(ready));
  const auto action = reactor->NextAction();
  lock.unlock();
  // With nothing to do, the reactor is not touched again: once the lock is
  // released, another thread may finish the stream and gRPC delete it.
  if (action == Action::kNone) return;
  // Alive here: this thread claimed the write or the finish in NextAction,
  // so nobody else calls Finish (gRPC calls OnDone only after it) until
  // Perform has handed the operation to gRPC, after which Perform touches
  // nothing of the reactor's.
  reactor->Perform(action);
}

void DetectStreamReactor::OnWriteDone(bool ok) {
  std::unique_lock<std::mutex> lock(state_->mutex);
  state_->writing = false;
  if (!ok && !state_->finished) {  // the client is gone
    state_->finished = true;
    lock.unlock();
    state_->call->Cancel();
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
    return;
  }
  const auto action = NextAction();
  lock.unlock();
  Perform(action);
}

DetectStreamReactor::Action DetectStreamReactor::NextAction() {
  auto& s = *state_;
  if (s.finished || s.writing) return Action::kNone;
  const auto next = s.ready.find(s.next_write);
  if (next != s.ready.end()) {
    if (!next->second.status.ok()) {  // a failed frame ends the stream with its status
      s.final_status = next->second.status;
      s.finished = true;
      return Action::kFinish;
    }
    write_buffer_ = std::move(next->second.response);
    s.ready.erase(next);
    ++s.next_write;
    s.writing = true;
    return Action::kWrite;
  }
  if (s.reads_done && s.in_flight == 0 && s.ready.empty()) {
    s.final_status = grpc::Status::OK;
    s.finished = true;
    return Action::kFinish;
  }
  return Action::kNone;
}

void DetectStreamReactor::Perform(Action action) {
  if (action == Action::kWrite) StartWrite(&write_buffer_);
  if (action == Action::kFinish) {
    auto state = state_;    // OnDone may delete this reactor once Finish is called
    state->call->Cancel();  // frames still queued have nobody to answer
    grpc::Status status;
    {
      std::lock_guard<std::mutex> lock(state->mutex);
      status = state->final_status;
    }
    Finish(status);
  }
}

void DetectStreamReactor::OnCancel() { state_->call->Cancel(); }

void DetectStreamReactor::OnDone() {
  state_->call->Cancel();
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->reactor = nullptr;  // answers still to come find the stream over
  }
  delete this;  // gRPC's reactor contract: the last event
}

}  // namespace detr::service
