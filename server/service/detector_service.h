// The detr.v1.Detector gRPC service (callback API): validates a request,
// decodes and preprocesses its image on the preprocessing pool, routes it,
// and answers when its model's batch completes.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "detr/v1/detector.grpc.pb.h"
#include "server/service/call_state.h"
#include "server/service/metrics.h"
#include "server/service/model_runner.h"
#include "server/service/router.h"
#include "server/service/server_config.h"
#include "server/service/thread_pool.h"

namespace detr {

class DetectorService final : public v1::Detector::CallbackService {
 public:
  DetectorService(const ServerConfig& config, const std::map<std::string, std::unique_ptr<ModelRunner>>& runners,
                  const Router& router, Metrics& metrics);

  grpc::ServerUnaryReactor* Detect(grpc::CallbackServerContext* context, const v1::DetectRequest* request,
                                   v1::DetectResponse* response) override;
  grpc::ServerBidiReactor<v1::DetectRequest, v1::DetectResponse>* DetectStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context, const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* context, const v1::GetModelRequest* request,
                                     v1::Model* response) override;

  /// From now on new requests get UNAVAILABLE; queued ones still finish.
  void StartDraining() { draining_.store(true); }

  using Done = std::function<void(const grpc::Status&, v1::DetectResponse&&)>;
  /// Runs one detection request (taken by value: it outlives the caller's
  /// message on the preprocessing pool); `done` is called exactly once.
  /// `call` tells queued work whether anyone still waits for the answer.
  void Handle(v1::DetectRequest request, std::shared_ptr<const CallState> call, Done done);

 private:
  void Prepare(const v1::DetectRequest& request, std::shared_ptr<const CallState> call, const Route& route,
               std::chrono::steady_clock::time_point start, Done done);
  void Answer(const Route& route, const std::string& request_id, std::chrono::steady_clock::time_point start,
              double preprocess_seconds, int width, int height, InferenceOutcome outcome, const Done& done);
  void Reject(const std::string& model, const std::string& request_id, const RequestError& error,
              std::chrono::steady_clock::time_point start, const Done& done);
  v1::Model Describe(const ModelRunner& runner) const;

  const ServerConfig& config_;
  const std::map<std::string, std::unique_ptr<ModelRunner>>& runners_;
  const Router& router_;
  Metrics& metrics_;
  std::atomic<bool> draining_{false};
  ThreadPool preprocess_pool_;  // last: destroyed (joined) first
};

}  // namespace detr
