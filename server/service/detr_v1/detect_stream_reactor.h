// DetectStream: frames in, one response per frame out, in the order of the
// frames. Frames are processed concurrently (and may share batches); their
// responses wait in the stream's state until every earlier one has been
// written.
//
// Lifetime: gRPC deletes nothing; the reactor deletes itself in OnDone, the
// last event gRPC sends it. The frames' answers may come later (a frame
// queued when the client vanished is dropped, and answered, afterwards), so
// everything they touch lives in a State that they share, and an answer that
// finds the reactor gone is dropped there. Counting frames in flight to
// delay the deletion instead was not enough: the hostile-client test under
// ASan once saw a frame answered after OnDone.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "detr/v1/detector.grpc.pb.h"
#include "server/service/pipeline/call_state.h"
#include "server/service/pipeline/request_pipeline.h"

namespace detr::service {

class DetectStreamReactor final : public grpc::ServerBidiReactor<v1::DetectRequest, v1::DetectResponse> {
 public:
  DetectStreamReactor(RequestPipeline& pipeline, grpc::CallbackServerContext* context);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  struct Result {
    grpc::Status status;
    v1::DetectResponse response;
  };
  // What to do next, decided under the lock and done outside it (gRPC may
  // run reactions inline).
  enum class Action { kNone, kWrite, kFinish };

  struct State {
    // Shared with every frame's queued work; cancelled once nobody can read
    // the answers (the client cancelled, or the stream is finished).
    std::shared_ptr<CallState> call;
    std::mutex mutex;
    DetectStreamReactor* reactor = nullptr;  // null once OnDone ran; guarded by mutex
    std::map<std::uint64_t, Result> ready;   // guarded by mutex
    std::uint64_t next_read = 0;             // guarded by mutex
    std::uint64_t next_write = 0;            // guarded by mutex
    int in_flight = 0;                       // frames submitted, not yet answered; guarded by mutex
    bool reads_done = false;                 // guarded by mutex
    bool writing = false;                    // guarded by mutex
    bool finished = false;                   // Finish() called; guarded by mutex
    grpc::Status final_status;               // guarded by mutex
  };

  static void OnResult(const std::shared_ptr<State>& state, std::uint64_t sequence,
                       absl::StatusOr<DetectResult> result);
  Action NextAction();  // requires state_->mutex
  void Perform(Action action);

  RequestPipeline& pipeline_;
  const std::shared_ptr<State> state_;
  v1::DetectRequest request_;        // the read buffer; only one read is outstanding
  v1::DetectResponse write_buffer_;  // owned by the write in progress
};

}  // namespace detr::service
