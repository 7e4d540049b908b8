#include "server/service/detr_v1/detector_messages.h"

#include <chrono>

namespace detr::service {
namespace {

void FillAttention(const AttentionTypes& attention, v1::AttentionTypes* out) {
  out->set_encoder_self(attention.encoder_self);
  out->set_decoder_self(attention.decoder_self);
  out->set_decoder_cross(attention.decoder_cross);
}

}  // namespace

DetectInput ToDetectInput(v1::DetectRequest&& request) {
  DetectInput input;
  auto& image = *request.mutable_image();
  if (image.source_case() == v1::Image::kEncoded) {
    input.image.kind = ImageInput::Kind::kEncoded;
    input.image.bytes = std::move(*image.mutable_encoded());
  } else if (image.source_case() == v1::Image::kRaw) {
    input.image.kind = ImageInput::Kind::kRaw;
    input.image.width = image.raw().width();
    input.image.height = image.raw().height();
    input.image.bytes = std::move(*image.mutable_raw()->mutable_rgb());
  }
  input.model = std::move(*request.mutable_model());
  input.routing_key = std::move(*request.mutable_routing_key());
  input.request_id = std::move(*request.mutable_request_id());
  input.options.score_threshold = request.score_threshold();
  // A uint32 over INT_MAX would turn negative: no model has that many queries.
  input.options.max_detections = static_cast<int>(std::min<std::uint32_t>(request.max_detections(), 1u << 30));
  input.options.class_ids.assign(request.class_ids().begin(), request.class_ids().end());
  return input;
}

void ToDetectResponse(DetectResult&& result, v1::DetectResponse* response) {
  for (auto& d : result.detections) {
    auto* out = response->add_detections();
    out->set_class_id(d.class_id);
    out->set_class_name(std::move(d.class_name));
    out->set_score(d.score);
    out->mutable_box()->set_x0(d.box[0]);
    out->mutable_box()->set_y0(d.box[1]);
    out->mutable_box()->set_x1(d.box[2]);
    out->mutable_box()->set_y1(d.box[3]);
  }
  response->set_model(std::move(result.model));
  FillAttention(result.attention, response->mutable_attention());
  response->set_experiment(std::move(result.experiment));
  response->set_batch_size(static_cast<std::uint32_t>(result.batch_size));
  auto* timings = response->mutable_timings();
  timings->set_queue_seconds(result.timings.queue);
  timings->set_preprocess_seconds(result.timings.preprocess);
  timings->set_inference_seconds(result.timings.inference);
  timings->set_postprocess_seconds(result.timings.postprocess);
  response->set_inference_memory_bytes(result.inference_memory_bytes);
  response->set_image_width(static_cast<std::uint32_t>(result.image_width));
  response->set_image_height(static_cast<std::uint32_t>(result.image_height));
  response->set_request_id(std::move(result.request_id));
}

v1::Model DescribeModel(const ModelRunner& runner) {
  const auto& entry = runner.entry();
  v1::Model model;
  model.set_name(runner.name());
  FillAttention(runner.attention(), model.mutable_attention());
  model.set_config_json(entry.config.ToJsonText());
  model.set_parameter_count(runner.info().parameter_count);
  model.set_weights(entry.weights);
  model.set_random_weights(runner.info().random_weights);
  model.set_max_batch_size(static_cast<std::uint32_t>(entry.batching.max_batch_size));
  model.set_max_queue_delay_seconds(std::chrono::duration<double>(entry.batching.max_queue_delay).count());
  for (const auto& name : entry.config.ClassNames()) model.add_class_names(name);
  model.set_precision(runner.info().precision);
  model.set_backbone_engine(runner.info().backbone_engine);
  return model;
}

}  // namespace detr::service
