// The one path every detection request takes, whatever its protocol:
//
//   validate -> route -> admit -> preprocess -> batch -> infer -> respond -> record
//
// Front ends (detr.v1 gRPC, the Open Inference Protocol over gRPC and HTTP)
// convert their messages to a DetectInput, call Run, and convert the
// DetectResult or error they are answered with. Errors are absl::Status
// values (status_mapping.h) all the way: decoding and preparation return
// them, and an exception on the path is a bug that last_resort.h answers as
// INTERNAL. A request's metrics and failure log are recorded in one place,
// when it is answered; what belongs to a batch (its size, the forward pass's
// memory, the model's memory gauges) is recorded by the ModelRunner that ran
// it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include <absl/status/statusor.h>

#include "server/service/observability/metrics.h"
#include "server/service/observability/rate_limited_log.h"
#include "server/service/pipeline/admission.h"
#include "server/service/pipeline/call_state.h"
#include "server/service/pipeline/model_set.h"
#include "server/service/pipeline/model_set_reaper.h"
#include "server/service/pipeline/request.h"
#include "server/service/pipeline/thread_pool.h"

namespace cv {
class Mat;
}

namespace detr::service {

struct PipelineOptions {
  int preprocess_threads = 2;
  std::int64_t max_pixels = 40'000'000;              ///< larger images: INVALID_ARGUMENT, before a full decode
  std::int64_t max_preprocessing = 64;               ///< requests admitted to preprocessing at once
  std::int64_t max_preprocessing_bytes = 256 << 20;  ///< and their image bytes
};

class RequestPipeline {
 public:
  using Respond = std::function<void(absl::StatusOr<DetectResult>)>;

  RequestPipeline(const PipelineOptions& options, Metrics& metrics, std::shared_ptr<const ModelSet> models);
  /// Waits for every admitted request to be answered.
  ~RequestPipeline();
  RequestPipeline(const RequestPipeline&) = delete;
  RequestPipeline& operator=(const RequestPipeline&) = delete;

  /// Runs one request. `respond` is called exactly once, on some thread of
  /// the server's (possibly this one), with the result or the error; what it
  /// throws is logged and dropped. `call` tells queued work whether anyone
  /// still waits for the answer.
  void Run(DetectInput input, std::shared_ptr<const CallState> call, Respond respond);
  /// Answers, with `error`, a request that its front end could not even
  /// convert (a malformed tensor, a bad parameter): recorded and logged like
  /// any failed request. `input` names its model and id.
  void Refuse(DetectInput input, absl::Status error, Respond respond);

  /// From now on new requests get UNAVAILABLE; admitted ones still finish.
  void StartDraining() { draining_.store(true); }
  bool draining() const { return draining_.load(); }

  /// The models requests are routed to now. A request keeps the set it was
  /// routed by until it is answered.
  std::shared_ptr<const ModelSet> models() const;
  /// Routes requests from now on to `models` (hot reload); the previous set
  /// is destroyed once its last request is answered.
  void SetModels(std::shared_ptr<const ModelSet> models);

 private:
  struct Request;
  using RequestPtr = std::shared_ptr<Request>;

  void Preprocess(const RequestPtr& request);
  void SubmitShadow(const RequestPtr& request, const cv::Mat& rgb);
  void OnInferred(const RequestPtr& request, absl::StatusOr<InferenceOutcome> outcome);
  DetectResult ResultOf(const Request& request, InferenceOutcome&& outcome) const;
  void Finish(const RequestPtr& request, absl::StatusOr<DetectResult> result);
  void Record(const Request& request, const absl::StatusOr<DetectResult>& result);

  const PipelineOptions options_;
  Metrics& metrics_;
  Admission admission_;
  RateLimitedLog failure_log_;  // failed requests: a client must not be able to flood the log
  std::atomic<bool> draining_{false};
  std::shared_ptr<const ModelSet> models_;  // read and written with std::atomic_load/store/exchange
  ModelSetReaper reaper_;                   // destroys the sets no request holds any more
  std::unique_ptr<ThreadPool> preprocess_pool_;
};

}  // namespace detr::service
