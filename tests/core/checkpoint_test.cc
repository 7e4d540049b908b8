// Loading weights: errors name their key; the softmax -> optimization swap of
// the paper loads with the unused q/k rows reported.
#include <fstream>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "server/core/io/checkpoint.h"
#include "server/core/model/detr.h"
#include "server/core/io/safetensors.h"
#include "server/core/io/tensor_io.h"
#include "tests/common/tiny_model_config.h"

namespace detr::core {
namespace {

ModelConfig TinyConfig(AttentionType type = AttentionType::kSoftmax) { return testing::TinyModelConfig(type); }

std::string LoadError(torch::nn::Module& model, const TensorMap& state) {
  try {
    LoadStateDict(model, state, "ckpt");
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

TEST(CheckpointTest, RoundTripsThroughSafetensors) {
  Detr source(TinyConfig());
  const std::string path = std::string(DETR_TEST_OUTPUT_DIR) + "/tiny.safetensors";
  SaveSafetensors(path, StateDict(*source));
  Detr target(TinyConfig());
  auto report = LoadWeightsFile(*target, path);
  EXPECT_TRUE(report.skipped.empty());
  for (const auto& [name, tensor] : StateDict(*source)) EXPECT_TRUE(tensor.equal(StateDict(*target).at(name))) << name;
}

TEST(CheckpointTest, MissingKeyIsNamed) {
  Detr model(TinyConfig());
  auto state = StateDict(*model);
  state.erase("transformer.decoder.norm.bias");
  EXPECT_NE(LoadError(*model, state).find("missing key 'transformer.decoder.norm.bias'"), std::string::npos);
}

TEST(CheckpointTest, WrongShapeIsNamedWithBothShapes) {
  Detr model(TinyConfig());
  auto state = StateDict(*model);
  state["class_embed.weight"] = at::zeros({92, 32});
  const auto error = LoadError(*model, state);
  EXPECT_NE(error.find("key 'class_embed.weight' has shape [92, 32], the model expects [4, 32]"), std::string::npos)
      << error;
}

TEST(CheckpointTest, UnexpectedKeyIsNamed) {
  Detr model(TinyConfig());
  auto state = StateDict(*model);
  state["backbone.0.body.fc.weight"] = at::zeros({2});
  EXPECT_NE(LoadError(*model, state).find("unexpected key 'backbone.0.body.fc.weight'"), std::string::npos);
}

TEST(CheckpointTest, IntegerTensorForAFloatParameterIsRejected) {
  Detr model(TinyConfig());
  auto state = StateDict(*model);
  state["query_embed.weight"] = at::zeros({4, 32}, at::kLong);
  EXPECT_NE(LoadError(*model, state).find("key 'query_embed.weight' has dtype Long"), std::string::npos);
}

TEST(CheckpointTest, HalfPrecisionWeightsAreWidened) {
  Detr source(TinyConfig());
  auto state = StateDict(*source);
  for (auto& [name, tensor] : state) tensor = tensor.to(at::kHalf);
  Detr target(TinyConfig());
  LoadStateDict(*target, state, "half");
  EXPECT_EQ(StateDict(*target).at("class_embed.weight").scalar_type(), at::kFloat);
  EXPECT_TRUE(StateDict(*target).at("class_embed.weight").equal(state.at("class_embed.weight").to(at::kFloat)));
}

// The paper's swap: a softmax checkpoint into optimization (or identity-QK) sites.
TEST(CheckpointTest, SoftmaxCheckpointLoadsIntoNonSoftmaxSitesWithQkReported) {
  Detr softmax(TinyConfig());
  auto state = StateDict(*softmax);
  for (auto type : {AttentionType::kOptimization, AttentionType::kSoftmaxIdentityQk, AttentionType::kPooling}) {
    Detr swapped(TinyConfig(type));
    auto report = LoadStateDict(*swapped, state, "softmax ckpt");
    // 3 sites x (weight + bias)
    ASSERT_EQ(report.skipped.size(), 6u);
    EXPECT_NE(report.skipped[0].find("q/k rows"), std::string::npos) << report.skipped[0];
    const auto key = "transformer.encoder.layers.0.self_attn.in_proj_weight";
    EXPECT_TRUE(StateDict(*swapped).at(key).equal(state.at(key).slice(0, 64, 96)));
    EXPECT_EQ(softmax->parameter_count() - swapped->parameter_count(), 3 * (2 * 32 * 32 + 2 * 32));
  }
}

TEST(CheckpointTest, MissingValueOrOutputProjectionIsAnError) {
  Detr softmax(TinyConfig());
  for (const std::string key : {"transformer.decoder.layers.0.multihead_attn.in_proj_weight",
                                "transformer.decoder.layers.0.multihead_attn.out_proj.weight"}) {
    auto state = StateDict(*softmax);
    state.erase(key);
    Detr swapped(TinyConfig(AttentionType::kOptimization));
    EXPECT_NE(LoadError(*swapped, state).find("missing key '" + key + "'"), std::string::npos) << key;
  }
}

TEST(CheckpointTest, LoadingAfterFoldingIsRefused) {
  Detr model(TinyConfig());
  auto state = StateDict(*model);
  model->PrepareForInference();
  EXPECT_NE(LoadError(*model, state).find("before PrepareForInference"), std::string::npos);
}

TEST(CheckpointTest, BadFileErrorsNameTheFile) {
  const std::string path = std::string(DETR_TEST_OUTPUT_DIR) + "/not-weights.safetensors";
  { std::ofstream(path) << "this is not a safetensors file"; }
  Detr model(TinyConfig());
  try {
    LoadWeightsFile(*model, path);
    FAIL();
  } catch (const safetensors::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(ModelConfigTest, ReadsOfficialKeysAndPerSiteAttention) {
  auto config = ModelConfig::FromJsonText(R"({
    "backbone": "resnet50", "dilation": true, "hidden_dim": 256, "nheads": 8, "enc_layers": 6,
    "dec_layers": 6, "dim_feedforward": 2048, "num_queries": 100, "num_classes": 91,
    "position_embedding": "sine", "normalize_before": false,
    "attention": {"decoder.cross": {"type": "optimization", "iterations": 3, "lambda": 0.1,
                                    "normalizer": "abs_power", "random_tokens": 4,
                                    "position_projection": true},
                  "encoder.self": "softmax_identity_qk"}})");
  EXPECT_TRUE(config.dilation);
  EXPECT_EQ(config.decoder_self.type, AttentionType::kSoftmax);  // missing site: softmax
  EXPECT_EQ(config.encoder_self.type, AttentionType::kSoftmaxIdentityQk);
  EXPECT_EQ(config.decoder_cross.type, AttentionType::kOptimization);
  EXPECT_EQ(config.decoder_cross.iterations, 3);
  EXPECT_EQ(config.decoder_cross.normalizer, Normalizer::kAbsPower);
  EXPECT_TRUE(config.decoder_cross.position_projection);
  EXPECT_FALSE(config.encoder_self.position_projection);
  EXPECT_FALSE(config.decoder_cross.ExcludesSelf(AttentionSite::kDecoderCross));
  EXPECT_TRUE(config.decoder_self.ExcludesSelf(AttentionSite::kDecoderSelf));
  // The JSON it writes reads back the same.
  auto again = ModelConfig::FromJsonText(config.ToJsonText());
  EXPECT_EQ(again.ToJsonText(), config.ToJsonText());
}

TEST(ModelConfigTest, ErrorsNameTheField) {
  auto error_of = [](const std::string& text) -> std::string {
    try {
      ModelConfig::FromJsonText(text, "m.json");
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of(R"({"hidden_dims": 3})").find("'hidden_dims' is not a model config key"), std::string::npos);
  EXPECT_NE(error_of(R"({"nheads": "8"})").find("'nheads' has the wrong type"), std::string::npos);
  // Found by the model config fuzzer: a number out of an int's range was a
  // cast with undefined behaviour; it is now refused like a wrong type.
  EXPECT_NE(error_of(R"({"enc_layers": 3.2e92})").find("'enc_layers' has the wrong type"), std::string::npos);
  EXPECT_NE(error_of(R"({"enc_layers": 4294967296})").find("'enc_layers' has the wrong type"), std::string::npos);
  EXPECT_NE(error_of(R"({"enc_layers": 2.5})").find("'enc_layers' has the wrong type"), std::string::npos);
  EXPECT_NE(error_of(R"({"attention": {"encoder.self": {"type": "performer"}}})").find("attention.encoder.self.type"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"attention": {"decoder.cross": {"itterations": 3}}})").find("itterations"), std::string::npos);
  EXPECT_NE(error_of(R"({"backbone": "resnet18", "dilation": true})").find("'dilation'"), std::string::npos);
  EXPECT_NE(error_of(R"({"attention": {"encoder.self": {"type": "softmax", "position_projection": true}}})")
                .find("'attention.encoder.self.position_projection' only applies to optimization"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"attention": {"decoder.cross": {"type": "linear", "query_key_projection": true}}})")
                .find("'attention.decoder.cross.query_key_projection' only applies to optimization"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"hidden_dim": 30, "nheads": 8})").find("divisible"), std::string::npos);
  EXPECT_NE(error_of(R"({"num_classes": 4, "class_names": ["N/A", "circle"]})").find("'class_names'"),
            std::string::npos);
}

TEST(ModelConfigTest, ClassNamesComeFromTheConfigOrCoco) {
  auto shapes =
      ModelConfig::FromJsonText(R"({"num_classes": 4, "class_names": ["N/A", "circle", "square", "triangle"]})");
  EXPECT_EQ(shapes.ClassNames().at(3), "triangle");
  EXPECT_EQ(ModelConfig::FromJsonText(shapes.ToJsonText()).class_names, shapes.class_names);
  EXPECT_EQ(ModelConfig::FromJsonText(R"({"num_classes": 91})").ClassNames().at(1), "person");
  const auto unnamed = ModelConfig::FromJsonText(R"({"num_classes": 3})").ClassNames();
  ASSERT_EQ(unnamed.size(), 3u);
  EXPECT_EQ(unnamed[2], "class 2");
}

}  // namespace
}  // namespace detr::core
