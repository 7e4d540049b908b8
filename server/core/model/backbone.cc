#include "server/core/model/backbone.h"

#include <ATen/ATen.h>

namespace detr::core {

BackboneImpl::BackboneImpl(const std::string& name, bool dilation) {
  body = register_module("body", ResNetBody(name, dilation));
}

std::pair<at::Tensor, at::Tensor> BackboneImpl::forward(const at::Tensor& pixel_values,
                                                        const at::Tensor& pixel_mask) {
  auto input = channels_last_ ? pixel_values.contiguous(at::MemoryFormat::ChannelsLast) : pixel_values;
  auto features = body(input);
  // As the official code: nearest-neighbour resize of the mask to the grid.
  auto mask = at::upsample_nearest2d(pixel_mask.unsqueeze(1).to(at::kFloat),
                                     {features.size(-2), features.size(-1)})
                  .squeeze(1)
                  .to(at::kBool);
  return {features, mask};
}

void BackboneImpl::PrepareForInference(bool use_onednn) {
  body->PrepareForInference(use_onednn);
  channels_last_ = true;
}

}  // namespace detr::core
