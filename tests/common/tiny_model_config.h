// A small DETR configuration for tests: ResNet-18, width 32, 4 heads.
#pragma once

#include "server/core/api/model_config.h"

namespace detr::testing {

inline core::ModelConfig TinyModelConfig(core::AttentionType type = core::AttentionType::kSoftmax, int dec_layers = 1,
                                         int num_queries = 4, int num_classes = 3) {
  core::ModelConfig config;
  config.backbone = "resnet18";
  config.hidden_dim = 32;
  config.nheads = 4;
  config.enc_layers = 1;
  config.dec_layers = dec_layers;
  config.dim_feedforward = 64;
  config.num_queries = num_queries;
  config.num_classes = num_classes;
  for (auto site :
       {core::AttentionSite::kEncoderSelf, core::AttentionSite::kDecoderSelf, core::AttentionSite::kDecoderCross}) {
    config.attention(site).type = type;
  }
  return config;
}

}  // namespace detr::testing
