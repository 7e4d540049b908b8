// DetectStream: frames in, one response per frame out, in the order of the
// frames. Frames are processed concurrently (and may share batches); their
// responses wait in `ready_` until every earlier one has been written.
#pragma once

#include <cstdint>
#include <map>
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

  void OnResult(std::uint64_t sequence, absl::StatusOr<DetectResult> result);
  Action NextAction();  // requires mutex_
  void Perform(Action action);
  void ReleaseIfDone(std::unique_lock<std::mutex>& lock);

  RequestPipeline& pipeline_;
  // Shared with every frame's queued work; cancelled once nobody can read
  // the answers (the client cancelled, or the stream is finished).
  const std::shared_ptr<CallState> call_;
  v1::DetectRequest request_;  // the read buffer; only one read is outstanding

  std::mutex mutex_;
  std::map<std::uint64_t, Result> ready_;  // guarded by mutex_
  std::uint64_t next_read_ = 0;            // guarded by mutex_
  std::uint64_t next_write_ = 0;           // guarded by mutex_
  int in_flight_ = 0;                      // frames submitted, not yet answered; guarded by mutex_
  bool reads_done_ = false;                // guarded by mutex_
  bool writing_ = false;                   // guarded by mutex_
  bool finished_ = false;                  // Finish() called; guarded by mutex_
  bool done_ = false;                      // OnDone() ran; guarded by mutex_
  grpc::Status final_status_;              // guarded by mutex_
  v1::DetectResponse write_buffer_;        // owned by the write in progress
};

}  // namespace detr::service
