#include "server/service/oip/model_description.h"

#include "server/service/pipeline/client_text.h"

namespace detr::service::oip {

absl::StatusOr<ModelMetadata> DescribeModel(const ModelSet& models, const std::string& name) {
  if (!models.Knows(name)) return absl::NotFoundError("no model or experiment named '" + Echo(name) + "'");
  ModelMetadata metadata;
  metadata.name = name;
  metadata.platform = "detr-serve_libtorch";
  metadata.inputs = {{"image", "BYTES", {1}}};
  metadata.outputs = {
      {"boxes", "FP32", {-1, 4}}, {"scores", "FP32", {-1}}, {"labels", "INT32", {-1}}, {"class_names", "BYTES", {-1}}};
  if (const auto* runner = models.Find(name)) {
    metadata.properties["kind"] = "model";
    metadata.properties["attention_encoder_self"] = runner->attention().encoder_self;
    metadata.properties["attention_decoder_self"] = runner->attention().decoder_self;
    metadata.properties["attention_decoder_cross"] = runner->attention().decoder_cross;
    metadata.properties["max_batch_size"] = std::to_string(runner->entry().batching.max_batch_size);
  } else if (const auto* experiment = models.config().FindExperiment(name)) {
    metadata.properties["kind"] = "experiment";
    metadata.properties["experiment_kind"] = ToString(experiment->kind);
    std::string arms;
    for (const auto& arm : experiment->arms) arms += (arms.empty() ? "" : ",") + arm.model;
    metadata.properties["arms"] = arms;
  }
  return metadata;
}

namespace {

absl::Status CheckVersion(const std::string& name, const std::string& version) {
  if (version.empty() || version == "1") return absl::OkStatus();
  return absl::NotFoundError("'" + Echo(name) + "' has one version, 1; there is no version '" + Echo(version) + "'");
}

std::string TritonDataType(const std::string& datatype) {
  return datatype == "BYTES" ? "TYPE_STRING" : "TYPE_" + datatype;
}

}  // namespace

absl::StatusOr<ModelConfiguration> DescribeConfiguration(const ModelSet& models, const std::string& name,
                                                         const std::string& version) {
  auto metadata = DescribeModel(models, name);
  if (!metadata.ok()) return metadata.status();
  if (auto status = CheckVersion(name, version); !status.ok()) return status;
  ModelConfiguration config;
  config.name = name;
  config.platform = metadata->platform;
  config.backend = "detr-serve";
  for (const auto& tensor : metadata->inputs) {
    config.inputs.push_back({tensor.name, TritonDataType(tensor.datatype), tensor.shape});
  }
  for (const auto& tensor : metadata->outputs) {
    config.outputs.push_back({tensor.name, TritonDataType(tensor.datatype), tensor.shape});
  }
  config.parameters = metadata->properties;
  if (const auto* runner = models.Find(name)) {
    const auto& batching = runner->entry().batching;
    config.instances = batching.workers;
    if (batching.max_batch_size > 1) {
      config.dynamic_batching = ModelConfiguration::DynamicBatching{
          batching.max_batch_size, static_cast<std::int64_t>(batching.max_queue_delay.count())};
    }
  }
  return config;
}

absl::StatusOr<std::vector<NamedStatistics>> CollectStatistics(const ModelSet& models, const std::string& name,
                                                               const std::string& version) {
  if (!name.empty() && !models.Knows(name)) {
    return absl::NotFoundError("no model or experiment named '" + Echo(name) + "'");
  }
  if (auto status = CheckVersion(name, version); !status.ok()) return status;
  std::vector<NamedStatistics> out;
  for (const auto& [model, runner] : models.runners()) {
    if (name.empty() || name == model) out.push_back({model, runner->statistics().Snapshot()});
  }
  for (const auto& experiment : models.config().experiments) {
    if (!name.empty() && name != experiment.name) continue;
    if (const auto* statistics = models.ExperimentStatistics(experiment.name)) {
      out.push_back({experiment.name, statistics->Snapshot()});
    }
  }
  return out;
}

// Triton's names for the extensions its clients look for: perf_analyzer
// reads the statistics around each measurement window only when listed.
ServerMetadata DescribeServer() {
  return {"detr-serve", DETR_VERSION, {"binary_tensor_data", "model_configuration", "parameters", "statistics"}};
}

}  // namespace detr::service::oip
