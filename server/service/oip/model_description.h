// What the Open Inference Protocol (and Triton's extensions of it) says of
// the models and experiments a server holds: metadata, configuration and
// statistics, protocol-neutral, for both bindings to put in their own form.
// Apart from inference_protocol.h, which converts requests and answers and
// needs no ModelSet (so that its fuzz harness links without the pipeline).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <absl/status/statusor.h>

#include "server/service/pipeline/inference_statistics.h"
#include "server/service/pipeline/model_set.h"

namespace detr::service::oip {

/// What ModelMetadata says of a model or experiment (NOT_FOUND if unknown).
struct ModelMetadata {
  std::string name;
  std::string platform;
  struct Tensor {
    std::string name, datatype;
    std::vector<std::int64_t> shape;
  };
  std::vector<Tensor> inputs, outputs;
  std::map<std::string, std::string> properties;
};
absl::StatusOr<ModelMetadata> DescribeModel(const ModelSet& models, const std::string& name);

/// A model's configuration as Triton's model configuration extension
/// describes it (what perf_analyzer reads after the metadata). Requests carry
/// one image each, so max_batch_size is 0 (dims are whole requests); the
/// server's own batching across requests is dynamic_batching.
struct ModelConfiguration {
  std::string name, platform, backend;
  struct Tensor {
    std::string name, data_type;  ///< "TYPE_STRING", "TYPE_FP32", ...
    std::vector<std::int64_t> dims;
  };
  std::vector<Tensor> inputs, outputs;
  int instances = 1;  ///< the model's batcher workers
  struct DynamicBatching {
    int preferred_batch_size = 1;
    std::int64_t max_queue_delay_microseconds = 0;
  };
  std::optional<DynamicBatching> dynamic_batching;  ///< when the model batches requests
  std::map<std::string, std::string> parameters;    ///< the metadata's properties
};
/// NOT_FOUND for an unknown name or a version other than "" and "1".
absl::StatusOr<ModelConfiguration> DescribeConfiguration(const ModelSet& models, const std::string& name,
                                                         const std::string& version);

/// Statistics of one model or experiment, as the statistics extension
/// reports them.
struct NamedStatistics {
  std::string name;
  StatisticsSnapshot statistics;
};
/// Of `name` (a model or experiment), or of every one when `name` is empty.
/// NOT_FOUND for an unknown name or version.
absl::StatusOr<std::vector<NamedStatistics>> CollectStatistics(const ModelSet& models, const std::string& name,
                                                               const std::string& version);

/// "detr-serve", its version, and the protocol extensions it speaks.
struct ServerMetadata {
  std::string name, version;
  std::vector<std::string> extensions;
};
ServerMetadata DescribeServer();

}  // namespace detr::service::oip
