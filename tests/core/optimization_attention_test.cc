// The "What must hold" list of docs/optimization-attention.md, one test each,
// plus the options of the optimization type.
#include <cmath>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include "server/core/io/checkpoint.h"
#include "server/core/model/detr.h"
#include "server/core/model/multihead_attention.h"
#include "server/core/model/transformer.h"
#include "server/core/model/optimization_attention.h"
#include "tests/common/tiny_model_config.h"

namespace detr::core {
namespace {

at::Tensor Randn(at::IntArrayRef shape, at::ScalarType dtype = at::kDouble) {
  return at::randn(shape, at::TensorOptions().dtype(dtype));
}

struct Problem {
  OptimizationProblem problem;
  AttentionOptions options;
};

Problem SmallProblem(int64_t n, int64_t m, int64_t dh, bool pad, bool exclude_self) {
  Problem p;
  p.problem.queries = Randn({2, 3, n, dh});
  p.problem.dictionary = Randn({2, 3, m, dh});
  if (pad) {
    p.problem.key_padding = at::zeros({2, m}, at::kBool);
    p.problem.key_padding.index_put_({1, at::indexing::Slice(m - 3, m)}, true);
  }
  p.problem.exclude_self = exclude_self;
  return p;
}

// The allowed mask and the solver's coefficients for a problem.
std::pair<at::Tensor, at::Tensor> Solve(const Problem& p) {
  auto allowed = AllowedCoefficients(p.problem);
  auto z = SolveCoefficients(PrepareQueries(p.problem.queries, p.options), PrepareDictionary(p.problem, p.options),
                             allowed, p.options);
  return {allowed, z};
}

class SeededTest : public ::testing::Test {
 protected:
  void SetUp() override { at::manual_seed(20261127); }
};

using OptimizationAttentionTest = SeededTest;

// With K in the thousands, Z is the LASSO optimum: the KKT conditions hold.
TEST_F(OptimizationAttentionTest, ManyStepsReachTheLassoOptimum) {
  for (bool exclude_self : {false, true}) {
    auto p = SmallProblem(10, 10, 6, /*pad=*/true, exclude_self);
    p.options.type = AttentionType::kOptimization;
    p.options.iterations = 5000;
    p.options.lambda = 0.05;
    auto allowed = AllowedCoefficients(p.problem);
    auto q = PrepareQueries(p.problem.queries, p.options);
    auto d = PrepareDictionary(p.problem, p.options);
    auto z = SolveCoefficients(q, d, allowed, p.options);

    auto gradient = at::matmul(q - at::matmul(z, d), d.transpose(-1, -2));  // r D^T
    auto free = allowed.expand_as(z) > 0;
    auto nonzero = (z != 0) & free;
    auto zero = (z == 0) & free;
    ASSERT_GT(nonzero.sum().item<int64_t>(), 0);
    ASSERT_GT(zero.sum().item<int64_t>(), 0) << "lambda too small to make anything sparse";
    auto active_violation = (gradient - p.options.lambda * z.sign()).abs().masked_select(nonzero).max();
    auto inactive_violation = gradient.abs().masked_select(zero).max();
    EXPECT_LE(active_violation.item<double>(), 1e-5) << "exclude_self=" << exclude_self;
    EXPECT_LE(inactive_violation.item<double>(), p.options.lambda + 1e-5) << "exclude_self=" << exclude_self;
    // Constrained coefficients stay exactly zero.
    EXPECT_EQ(z.masked_select(~free).abs().max().item<double>(), 0.0);
  }
}

// The Woodbury/Cholesky path equals the explicit (D D^T + rho I)^-1 path.
TEST_F(OptimizationAttentionTest, WoodburyEqualsDirectInverse) {
  for (double rho : {0.5, 1.0, 3.0}) {
    auto p = SmallProblem(7, 12, 5, /*pad=*/true, /*exclude_self=*/false);
    p.options.iterations = 5;
    p.options.rho = rho;
    auto allowed = AllowedCoefficients(p.problem);
    auto q = PrepareQueries(p.problem.queries, p.options);
    auto d = PrepareDictionary(p.problem, p.options);
    auto fast = SolveCoefficients(q, d, allowed, p.options);
    auto direct = SolveCoefficientsDirect(q, d, allowed, p.options);
    EXPECT_LE((fast - direct).abs().max().item<double>(), 1e-6) << "rho=" << rho;
  }
}

MultiheadAttention MakeSite(AttentionType type, AttentionSite site, AttentionOptions options = {}) {
  options.type = type;
  auto attention = MultiheadAttention(16, 4, site, options, std::string(ToString(site)) + ".0");
  attention->to(at::kDouble);
  return attention;
}

// Padded keys get exactly zero weight, and their content changes nothing.
TEST_F(OptimizationAttentionTest, PaddedKeysGetZeroWeightAndChangeNothing) {
  auto p = SmallProblem(6, 9, 4, /*pad=*/true, false);
  p.options.random_tokens = 2;
  p.problem.random_directions = Randn({3, 2, 4});
  auto [allowed, z] = Solve(p);
  for (auto normalizer : {Normalizer::kReluPower, Normalizer::kAbsPower, Normalizer::kSoftmax}) {
    p.options.normalizer = normalizer;
    auto weights = CoefficientsToWeights(z, allowed, p.options);
    auto padded_weights = weights[1].slice(-1, 6, 9);  // image 1's last 3 keys are padding
    EXPECT_EQ(padded_weights.abs().max().item<double>(), 0.0) << ToString(normalizer);
  }

  for (auto type : {AttentionType::kSoftmax, AttentionType::kSoftmaxIdentityQk, AttentionType::kOptimization,
                    AttentionType::kLinear, AttentionType::kPooling}) {
    for (auto site : {AttentionSite::kDecoderCross, AttentionSite::kEncoderSelf}) {
      AttentionOptions options;
      options.random_tokens = 3;
      auto attention = MakeSite(type, site, options);
      const int64_t n = site == AttentionSite::kEncoderSelf ? 9 : 5;
      auto query = Randn({2, n, 16});
      auto key = site == AttentionSite::kEncoderSelf ? query : Randn({2, 9, 16});
      auto value = Randn({2, 9, 16});
      auto padding = at::zeros({2, 9}, at::kBool);
      padding.index_put_({0, at::indexing::Slice(6, 9)}, true);
      auto before = attention(query, key, value, padding);

      auto key2 = key.clone(), value2 = value.clone(), query2 = query.clone();
      key2.index_put_({0, at::indexing::Slice(6, 9)}, Randn({3, 16}) * 10);
      value2.index_put_({0, at::indexing::Slice(6, 9)}, Randn({3, 16}) * 10);
      if (site == AttentionSite::kEncoderSelf) {
        query2 = key2;  // self-attention: the padded tokens are queries too
      }
      auto after = attention(query2, site == AttentionSite::kEncoderSelf ? query2 : key2, value2, padding);
      // Outputs of real (unpadded) query tokens do not move.
      const int64_t real = site == AttentionSite::kEncoderSelf ? 6 : n;
      EXPECT_LE((before[0].slice(0, 0, real) - after[0].slice(0, 0, real)).abs().max().item<double>(), 1e-12)
          << ToString(type) << " " << ToString(site);
      EXPECT_TRUE(before[1].equal(after[1]));
    }
  }
}

// An image's output does not depend on the other images of its batch.
TEST_F(OptimizationAttentionTest, OutputDoesNotDependOnBatchMates) {
  for (auto type : {AttentionType::kSoftmax, AttentionType::kSoftmaxIdentityQk, AttentionType::kOptimization,
                    AttentionType::kLinear, AttentionType::kPooling}) {
    auto config = testing::TinyModelConfig(type, /*dec_layers=*/2, /*num_queries=*/5, /*num_classes=*/91);
    for (auto site : {AttentionSite::kEncoderSelf, AttentionSite::kDecoderSelf, AttentionSite::kDecoderCross}) {
      config.attention(site).random_tokens = 2;
    }
    Detr model(config);
    model->PrepareForInference();
    torch::NoGradGuard no_grad;
    auto images = Randn({3, 3, 64, 96}, at::kFloat);
    auto mask = at::zeros({3, 64, 96}, at::kBool);
    auto together = model->forward(images, mask);
    for (int64_t i = 0; i < 3; ++i) {
      auto alone = model->forward(images.slice(0, i, i + 1), mask.slice(0, i, i + 1));
      EXPECT_LE((alone.logits[0] - together.logits[i]).abs().max().item<double>(), 1e-4) << ToString(type);
      EXPECT_LE((alone.boxes[0] - together.boxes[i]).abs().max().item<double>(), 1e-4) << ToString(type);
    }
  }
}

// The official training's dropout (in the transformer, and on softmax
// sites' attention weights) acts only while training with gradients:
// inference gives the same answer in either mode, and dropout 0 never drops.
TEST_F(OptimizationAttentionTest, DropoutActsOnlyWhileTrainingWithGradients) {
  for (auto type : {AttentionType::kSoftmax, AttentionType::kOptimization}) {
    auto config = testing::TinyModelConfig(type, /*dec_layers=*/1, /*num_queries=*/5, /*num_classes=*/91);
    config.dropout = 0.5;
    Detr model(config);
    model->train();
    auto images = Randn({1, 3, 64, 64}, at::kFloat);
    auto mask = at::zeros({1, 64, 64}, at::kBool);
    const auto logits = [&] { return model->forward(images, mask).logits.detach(); };
    EXPECT_FALSE(logits().equal(logits())) << ToString(type) << ": training drops at random";
    {
      torch::NoGradGuard no_grad;
      EXPECT_TRUE(logits().equal(logits())) << ToString(type) << ": no gradients, no dropout";
    }
    model->eval();
    EXPECT_TRUE(logits().equal(logits())) << ToString(type) << ": eval mode, no dropout";
  }
  auto config = testing::TinyModelConfig();
  config.dropout = 0;
  Detr model(config);
  model->train();
  auto images = Randn({1, 3, 64, 64}, at::kFloat);
  auto mask = at::zeros({1, 64, 64}, at::kBool);
  EXPECT_TRUE(model->forward(images, mask).logits.equal(model->forward(images, mask).logits));
  config.dropout = 1.0;
  EXPECT_THROW(config.Validate(), std::invalid_argument);
  EXPECT_NE(testing::TinyModelConfig().ToJsonText().find("\"dropout\": 0.1"), std::string::npos);
}

// Gradients through the K unrolled steps are finite and match finite differences.
TEST_F(OptimizationAttentionTest, GradientsMatchFiniteDifferences) {
  AttentionOptions options;
  options.iterations = 4;
  options.random_tokens = 2;
  auto attention = MakeSite(AttentionType::kOptimization, AttentionSite::kDecoderCross, options);
  auto query = Randn({1, 3, 16}).requires_grad_();
  auto key = Randn({1, 7, 16}).requires_grad_();
  auto value = Randn({1, 7, 16}).requires_grad_();
  auto probe = Randn({1, 3, 16});
  auto loss_of = [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    return (attention(q, k, v) * probe).sum();
  };
  loss_of(query, key, value).backward();
  for (auto* input : {&query, &key, &value}) {
    auto analytic = input->grad();
    ASSERT_TRUE(analytic.isfinite().all().item<bool>());
    ASSERT_GT(analytic.abs().max().item<double>(), 0.0);
    torch::NoGradGuard no_grad;
    auto flat = input->detach().clone().view(-1);
    const double h = 1e-6;
    double worst = 0;
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const double original = flat[i].item<double>();
      flat[i] = original + h;
      auto shaped = flat.view(input->sizes());
      auto plus =
          loss_of(input == &query ? shaped : query, input == &key ? shaped : key, input == &value ? shaped : value)
              .item<double>();
      flat[i] = original - h;
      auto minus =
          loss_of(input == &query ? shaped : query, input == &key ? shaped : key, input == &value ? shaped : value)
              .item<double>();
      flat[i] = original;
      const double numeric = (plus - minus) / (2 * h);
      worst = std::max(worst, std::abs(numeric - analytic.view(-1)[i].item<double>()));
    }
    EXPECT_LE(worst, 1e-5);
  }
}

TEST_F(OptimizationAttentionTest, SelfIsExcludedFromItsOwnDictionary) {
  // dh well above m: rows are nearly orthogonal, so only a query's own row
  // reconstructs it well.
  auto p = SmallProblem(8, 8, 32, false, /*exclude_self=*/true);
  p.problem.dictionary = p.problem.queries;  // self-attention
  auto [allowed, z] = Solve(p);
  EXPECT_EQ(z.diagonal(0, -2, -1).abs().max().item<double>(), 0.0);
  // Without the exclusion a query is best reconstructed by itself.
  p.problem.exclude_self = false;
  auto free = Solve(p).second;
  EXPECT_TRUE((free.diagonal(0, -2, -1) > 0).all().item<bool>());
}

TEST_F(OptimizationAttentionTest, TopKKeepsAtMostKWeightsPerRow) {
  auto p = SmallProblem(6, 20, 8, false, false);
  p.options.lambda = 0.001;  // dense coefficients, so top-k has work to do
  p.options.top_k = 3;
  auto [allowed, z] = Solve(p);
  for (auto normalizer : {Normalizer::kReluPower, Normalizer::kAbsPower, Normalizer::kSoftmax}) {
    p.options.normalizer = normalizer;
    auto weights = CoefficientsToWeights(z, allowed, p.options);
    EXPECT_LE((weights > 0).sum(-1).max().item<int64_t>(), 3) << ToString(normalizer);
    EXPECT_LE(weights.sum(-1).max().item<double>(), 1.0 + 1e-9);
  }
}

// The spec's random tokens: directions scaled by sigma, the RMS of the
// dictionary's real (unpadded) entries, per image and head; their value rows
// are zero, so they take weight from the keys without adding to the output.
TEST_F(OptimizationAttentionTest, RandomTokensHaveTheDictionarysRmsAndZeroValues) {
  auto p = SmallProblem(6, 9, 4, /*pad=*/true, false);
  p.options.random_tokens = 2;
  p.options.normalize_inputs = false;
  p.problem.random_directions = Randn({3, 2, 4});
  const auto dictionary = PrepareDictionary(p.problem, p.options);
  ASSERT_EQ(dictionary.sizes(), (std::vector<int64_t>{2, 3, 11, 4}));
  for (int64_t b = 0; b < 2; ++b) {
    const int64_t real = b == 0 ? 9 : 6;  // image 1's last 3 keys are padding
    for (int64_t h = 0; h < 3; ++h) {
      const auto rows = p.problem.dictionary[b][h].slice(0, 0, real);
      const double sigma = std::sqrt(rows.pow(2).sum().item<double>() / static_cast<double>(real * 4));
      EXPECT_TRUE(at::allclose(dictionary[b][h].slice(0, 9, 11), p.problem.random_directions[h] * sigma, 1e-12, 1e-12))
          << "image " << b << ", head " << h;
    }
  }
  const auto values = Randn({2, 3, 9, 4});
  auto [allowed, z] = Solve(p);
  const auto weights = CoefficientsToWeights(z, allowed, p.options);  // (2, 3, 6, 11)
  const auto zero_rows = at::zeros({2, 3, 2, 4}, values.options());
  const auto expected = at::matmul(weights, at::cat({values, zero_rows}, 2));
  EXPECT_TRUE(at::allclose(OptimizationAttention(p.problem, values, p.options), expected, 1e-12, 1e-12));
  EXPECT_GT(weights.slice(-1, 9, 11).abs().max().item<double>(), 0.0) << "the random tokens take weight";
}

// The reviewers' baselines against straightforward loops over their
// definitions: linear attention with phi(x) = elu(x) + 1, and mean pooling,
// both over unpadded keys only.
TEST_F(OptimizationAttentionTest, LinearAndPoolingAttentionMatchTheirDefinitions) {
  const int64_t n = 4, m = 6, dh = 3;
  auto q = Randn({2, 2, n, dh}), k = Randn({2, 2, m, dh}), v = Randn({2, 2, m, dh});
  auto padding = at::zeros({2, m}, at::kBool);
  padding.index_put_({1, at::indexing::Slice(m - 2, m)}, true);  // image 1: 2 padded keys
  const auto linear = LinearAttention(q, k, v, padding);
  const auto pooled = PoolingAttention(n, v, padding);
  const auto phi = [](double x) { return x > 0 ? x + 1 : std::exp(x); };  // elu(x) + 1
  for (int64_t b = 0; b < 2; ++b) {
    const int64_t real = b == 0 ? m : m - 2;
    for (int64_t h = 0; h < 2; ++h) {
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t c = 0; c < dh; ++c) {
          double numerator = 0, denominator = 0, sum = 0;
          for (int64_t j = 0; j < real; ++j) {
            double similarity = 0;
            for (int64_t e = 0; e < dh; ++e) {
              similarity += phi(q[b][h][i][e].item<double>()) * phi(k[b][h][j][e].item<double>());
            }
            numerator += similarity * v[b][h][j][c].item<double>();
            denominator += similarity;
            sum += v[b][h][j][c].item<double>();
          }
          EXPECT_NEAR(linear[b][h][i][c].item<double>(), numerator / denominator, 1e-10);
          EXPECT_NEAR(pooled[b][h][i][c].item<double>(), sum / static_cast<double>(real), 1e-12);
        }
      }
    }
  }
}

// Windowed pooling (encoder.self's option) against a loop over its
// definition: the mean of the unpadded tokens in the window x window square
// around each token of a 3 x 4 grid; padding is the right column, as an
// image narrower than its batch pads it.
TEST_F(OptimizationAttentionTest, WindowedPoolingMatchesItsDefinition) {
  const int64_t height = 3, width = 4, m = height * width, dh = 2;
  const auto v = Randn({2, 2, m, dh});
  auto padding = at::zeros({2, m}, at::kBool);
  for (int64_t y = 0; y < height; ++y) padding.index_put_({1, y * width + width - 1}, true);
  for (int64_t window : {1, 3, 5}) {
    const auto pooled = PoolingAttention(m, v, padding, window, TokenGrid{height, width});
    for (int64_t b = 0; b < 2; ++b) {
      for (int64_t h = 0; h < 2; ++h) {
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t c = 0; c < dh; ++c) {
            double sum = 0;
            int count = 0;
            for (int64_t j = 0; j < m; ++j) {
              const bool near =
                  std::abs(j / width - i / width) <= window / 2 && std::abs(j % width - i % width) <= window / 2;
              if (!near || padding[b][j].item<bool>()) continue;
              sum += v[b][h][j][c].item<double>();
              ++count;
            }
            // A padded token with no unpadded neighbour (window 1) gets 0.
            const double expected = count > 0 ? sum / count : 0.0;
            EXPECT_NEAR(pooled[b][h][i][c].item<double>(), expected, 1e-12) << "window " << window;
          }
        }
      }
    }
  }
  // A model with it: encoder.self pools in a window; other sites reject the option.
  auto config = testing::TinyModelConfig(AttentionType::kPooling, /*dec_layers=*/1, /*num_queries=*/5,
                                         /*num_classes=*/91);
  config.encoder_self.window = 3;
  EXPECT_NO_THROW(config.Validate());
  Detr model(config);
  model->PrepareForInference();
  torch::NoGradGuard no_grad;
  const auto out = model->forward(Randn({1, 3, 64, 96}, at::kFloat), at::zeros({1, 64, 96}, at::kBool));
  EXPECT_TRUE(out.boxes.isfinite().all().item<bool>());
  config.decoder_self.window = 3;
  EXPECT_THROW(config.Validate(), std::invalid_argument);
  config.decoder_self.window = 0;
  config.encoder_self.window = 2;
  EXPECT_THROW(config.Validate(), std::invalid_argument);
}

// Linear sites keep the q, k and v projections (a softmax checkpoint loads
// as it is); pooling sites keep only v. Both train: gradients reach them.
TEST_F(OptimizationAttentionTest, LinearAndPoolingSitesHoldTheirProjectionsAndTrain) {
  const int64_t d = 16;
  for (auto type : {AttentionType::kLinear, AttentionType::kPooling}) {
    auto attention = MakeSite(type, AttentionSite::kDecoderCross);
    EXPECT_EQ(attention->in_proj_weight.size(0), type == AttentionType::kLinear ? 3 * d : d) << ToString(type);
    auto query = Randn({1, 3, d}), key = Randn({1, 7, d});
    (attention(query, key, key) * Randn({1, 3, d})).sum().backward();
    ASSERT_TRUE(attention->in_proj_weight.grad().defined()) << ToString(type);
    EXPECT_GT(attention->in_proj_weight.grad().abs().max().item<double>(), 0.0) << ToString(type);
    EXPECT_TRUE(attention->in_proj_weight.grad().isfinite().all().item<bool>()) << ToString(type);
  }
}

// random_tokens_resample: train draws new directions at every training step
// (a regulariser), from a stream of its own; inference keeps the fixed draw,
// the same as a site that never resamples.
TEST_F(OptimizationAttentionTest, RandomTokensResampleOnlyWhileTraining) {
  AttentionOptions options;
  options.type = AttentionType::kOptimization;
  options.random_tokens = 4;
  options.random_seed = 7;
  const auto make = [&](bool resample) {
    options.random_tokens_resample_train = resample;
    torch::manual_seed(1);  // the same projection weights for both
    MultiheadAttention attention(16, 4, AttentionSite::kDecoderCross, options, "decoder.cross.0");
    attention->to(at::kDouble);
    return attention;
  };
  auto resampling = make(true), fixed = make(false);
  auto query = Randn({1, 5, 16}), key = Randn({1, 9, 16});
  EXPECT_FALSE(resampling(query, key, key).equal(resampling(query, key, key))) << "a new draw per training step";
  EXPECT_TRUE(fixed(query, key, key).equal(fixed(query, key, key)));
  resampling->eval();
  fixed->eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(resampling(query, key, key).equal(fixed(query, key, key))) << "inference: the fixed draw";
  auto config = testing::TinyModelConfig(AttentionType::kOptimization);
  config.attention(AttentionSite::kDecoderCross).random_tokens_resample_train = true;
  EXPECT_NE(config.ToJsonText().find("\"random_tokens_resample\": \"train\""), std::string::npos);
}

TEST_F(OptimizationAttentionTest, RandomTokensAreReproduciblePerSeedAndSite) {
  AttentionOptions options;
  options.random_tokens = 4;
  auto query = Randn({1, 5, 16});
  auto key = Randn({1, 9, 16});
  auto run = [&](uint64_t seed, const std::string& site_id) {
    options.random_seed = seed;
    options.type = AttentionType::kOptimization;
    torch::manual_seed(1);  // same projection weights for every instance
    MultiheadAttention attention(16, 4, AttentionSite::kDecoderCross, options, site_id);
    attention->to(at::kDouble);
    return attention(query, key, key);
  };
  EXPECT_TRUE(run(7, "decoder.cross.0").equal(run(7, "decoder.cross.0")));
  EXPECT_FALSE(run(7, "decoder.cross.0").equal(run(8, "decoder.cross.0")));
  EXPECT_FALSE(run(7, "decoder.cross.0").equal(run(7, "decoder.cross.1")));
}

TEST_F(OptimizationAttentionTest, NonSoftmaxSitesDropTheQueryAndKeyProjections) {
  const int64_t d = 16;
  auto softmax = MakeSite(AttentionType::kSoftmax, AttentionSite::kEncoderSelf);
  auto count = [](const torch::nn::Module& m) {
    int64_t n = 0;
    for (const auto& p : m.parameters()) n += p.numel();
    return n;
  };
  for (auto type : {AttentionType::kSoftmaxIdentityQk, AttentionType::kOptimization, AttentionType::kPooling}) {
    auto other = MakeSite(type, AttentionSite::kEncoderSelf);
    EXPECT_EQ(count(*softmax) - count(*other), 2 * d * d + 2 * d) << ToString(type);
  }
}

// `config` with position_projection at every site.
ModelConfig WithPositionProjection(ModelConfig config) {
  for (auto site : {AttentionSite::kEncoderSelf, AttentionSite::kDecoderSelf, AttentionSite::kDecoderCross}) {
    config.attention(site).position_projection = true;
  }
  return config;
}

// position_projection (the spec's deviation): QueryPosition maps with the
// first d rows of pos_proj_weight, KeyPosition with the last d.
TEST_F(OptimizationAttentionTest, PositionProjectionMapsQueriesAndKeysWithTheirOwnRows) {
  AttentionOptions options;
  options.position_projection = true;
  auto attention = MakeSite(AttentionType::kOptimization, AttentionSite::kDecoderCross, options);
  auto pos = Randn({2, 5, 16});
  EXPECT_TRUE(attention->QueryPosition(pos).equal(pos)) << "starts as the identity";
  EXPECT_TRUE(attention->KeyPosition(pos).equal(pos));
  auto query_map = Randn({16, 16}), key_map = Randn({16, 16});
  {
    torch::NoGradGuard no_grad;
    attention->pos_proj_weight.copy_(at::cat({query_map, key_map}));
  }
  EXPECT_TRUE(attention->QueryPosition(pos).allclose(at::matmul(pos, query_map.t())));
  EXPECT_TRUE(attention->KeyPosition(pos).allclose(at::matmul(pos, key_map.t())));
  EXPECT_FALSE(MakeSite(AttentionType::kOptimization, AttentionSite::kDecoderCross)->HasPositionProjection());
}

// The whole transformer with every site mapping positions by M for queries
// and keys alike equals the spec's transformer given the positions already
// mapped: so each site adds the mapped term, to queries and keys, and to
// nothing else (values stay unmapped).
TEST_F(OptimizationAttentionTest, PositionProjectionAddsTheMappedTermToQueriesAndKeysOnly) {
  const auto spec_config = testing::TinyModelConfig(AttentionType::kOptimization, /*dec_layers=*/2);
  const auto projected_config = WithPositionProjection(spec_config);
  Transformer spec(spec_config), projected(projected_config);
  spec->to(at::kDouble);
  projected->to(at::kDouble);
  auto map = Randn({32, 32}) * 0.3;
  {
    torch::NoGradGuard no_grad;
    auto spec_state = spec->named_parameters();
    for (auto& item : projected->named_parameters()) {
      if (item.key().find("pos_proj_weight") != std::string::npos) {
        item.value().copy_(at::cat({map, map}));
      } else {
        item.value().copy_(spec_state[item.key()]);
      }
    }
  }
  spec->eval();
  projected->eval();
  auto src = Randn({2, 6, 32}), pos = Randn({2, 6, 32}), query_embed = Randn({4, 32});
  auto padding = at::zeros({2, 6}, at::kBool);
  padding.index_put_({1, at::indexing::Slice(4, 6)}, true);
  torch::NoGradGuard no_grad;
  const auto expected =
      spec(src, padding, at::matmul(query_embed, map.t()), at::matmul(pos, map.t()), /*all_layers=*/true);
  const auto actual = projected(src, padding, query_embed, pos, /*all_layers=*/true);
  EXPECT_LE((actual - expected).abs().max().item<double>(), 1e-10);
  EXPECT_GT((actual - spec(src, padding, query_embed, pos, true)).abs().max().item<double>(), 1e-3)
      << "the map changes the output";
}

// A checkpoint without pos_proj_weight (every model trained before the
// option) loads into a model with it: the identity is filled in and
// reported, so the model computes what the checkpoint did; fine-tuning then
// trains the maps.
TEST_F(OptimizationAttentionTest, PositionProjectionLoadsOlderCheckpointsAsTheIdentityAndTrains) {
  const auto spec_config = testing::TinyModelConfig(AttentionType::kOptimization, /*dec_layers=*/2);
  const auto projected_config = WithPositionProjection(spec_config);
  Detr spec(spec_config), projected(projected_config);
  const auto report = LoadStateDict(*projected, StateDict(*spec), "spec ckpt");
  ASSERT_EQ(report.skipped.size(), 5u);  // 1 encoder + 2 x 2 decoder sites
  EXPECT_NE(report.skipped[0].find("pos_proj_weight: not in the checkpoint"), std::string::npos) << report.skipped[0];
  EXPECT_EQ(projected->parameter_count() - spec->parameter_count(), 5 * 2 * 32 * 32);

  auto pixels = at::rand({1, 3, 64, 96});
  auto mask = at::zeros({1, 64, 96}, at::kBool);
  spec->eval();
  projected->eval();
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(spec(pixels, mask).boxes.equal(projected(pixels, mask).boxes));
  }
  projected->train();
  projected(pixels, mask).boxes.sum().backward();
  for (const auto& item : projected->named_parameters()) {
    // The first decoder layer's self-attention sees tgt = 0, so every value
    // row is the bias and its weights cannot matter (as in official DETR).
    if (item.key().find("pos_proj_weight") == std::string::npos ||
        item.key() == "transformer.decoder.layers.0.self_attn.pos_proj_weight") {
      continue;
    }
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_GT(item.value().grad().abs().max().item<float>(), 0.0f) << item.key();
  }
}

// query_key_projection (the ablation of the dropped projections): the site
// holds softmax's q, k and v rows and solves on the projected queries and
// keys; an optimization checkpoint (v rows only) loads with identity q/k rows,
// which compute what it did, and they train.
TEST_F(OptimizationAttentionTest, QueryKeyProjectionSolvesOnProjectedQueriesAndKeys) {
  AttentionOptions options;
  options.query_key_projection = true;
  for (auto site : {AttentionSite::kEncoderSelf, AttentionSite::kDecoderCross}) {
    auto plain = MakeSite(AttentionType::kOptimization, site);
    auto projected = MakeSite(AttentionType::kOptimization, site, options);
    ASSERT_EQ(projected->in_proj_weight.size(0), 3 * 16);
    auto state = StateDict(*plain);
    const auto report = LoadStateDict(*projected, state, "optimization ckpt");
    ASSERT_EQ(report.skipped.size(), 1u);
    EXPECT_NE(report.skipped[0].find("no q/k rows"), std::string::npos) << report.skipped[0];
    const int64_t n = site == AttentionSite::kEncoderSelf ? 7 : 3;
    auto query = Randn({2, n, 16}), key = Randn({2, 7, 16});
    if (site == AttentionSite::kEncoderSelf) query = key;
    EXPECT_LE((projected(query, key, key) - plain(query, key, key)).abs().max().item<double>(), 1e-12)
        << ToString(site) << ": identity rows compute what the checkpoint did";
    // A map M on the queries and keys equals the plain site on mapped inputs.
    auto map = Randn({16, 16}) * 0.3;
    {
      torch::NoGradGuard no_grad;
      projected->in_proj_weight.narrow(0, 0, 32).copy_(at::cat({map, map}));
    }
    auto mapped_key = at::matmul(key, map.t());
    auto mapped_query = site == AttentionSite::kEncoderSelf ? mapped_key : at::matmul(query, map.t());
    // The plain site takes values from its key argument, so give it the raw
    // values through a cross-site call with the mapped keys.
    auto expected = plain(mapped_query, mapped_key, key);
    EXPECT_LE((projected(query, key, key) - expected).abs().max().item<double>(), 1e-10) << ToString(site);
    projected(query, key, key).sum().backward();
    EXPECT_GT(projected->in_proj_weight.grad().narrow(0, 0, 32).abs().max().item<double>(), 0.0) << ToString(site);
  }
}

TEST_F(OptimizationAttentionTest, IdentityQkIsSoftmaxWithIdentityProjections) {
  auto identity = MakeSite(AttentionType::kSoftmaxIdentityQk, AttentionSite::kDecoderCross);
  auto softmax = MakeSite(AttentionType::kSoftmax, AttentionSite::kDecoderCross);
  {
    torch::NoGradGuard no_grad;
    auto eye = at::eye(16, at::kDouble);
    softmax->in_proj_weight.copy_(at::cat({eye, eye, identity->in_proj_weight}));
    softmax->in_proj_bias.copy_(at::cat({at::zeros({32}, at::kDouble), identity->in_proj_bias}));
    softmax->out_proj->weight.copy_(identity->out_proj->weight);
    softmax->out_proj->bias.copy_(identity->out_proj->bias);
  }
  auto query = Randn({2, 4, 16}), key = Randn({2, 6, 16}), value = Randn({2, 6, 16});
  EXPECT_LE((identity(query, key, value) - softmax(query, key, value)).abs().max().item<double>(), 1e-12);
}

}  // namespace
}  // namespace detr::core

#include "server/core/kernels/optimization_attention_inference.h"

namespace detr::core {
namespace {

// The chunked, fused inference path computes what the differentiable one does.
TEST(OptimizationAttentionInferenceTest, EqualsTheDifferentiablePath) {
  at::manual_seed(11);
  struct Case {
    bool pad, exclude_self;
    int random_tokens, top_k;
    Normalizer normalizer;
    int64_t chunk;
  };
  const Case cases[] = {
      {false, false, 0, 0, Normalizer::kReluPower, 0}, {true, false, 0, 0, Normalizer::kReluPower, 7},
      {true, true, 0, 0, Normalizer::kReluPower, 5},   {true, true, 3, 0, Normalizer::kAbsPower, 4},
      {false, true, 2, 0, Normalizer::kSoftmax, 6},    {true, false, 0, 3, Normalizer::kReluPower, 8},
      {true, true, 4, 2, Normalizer::kAbsPower, 100},
  };
  for (const auto& c : cases) {
    const int64_t n = 19, m = 19, dh = 8;
    OptimizationProblem problem;
    problem.queries = at::randn({2, 3, n, dh});
    problem.dictionary = c.exclude_self ? problem.queries : at::randn({2, 3, m, dh});
    if (c.pad) {
      problem.key_padding = at::zeros({2, m}, at::kBool);
      problem.key_padding.index_put_({1, at::indexing::Slice(m - 5, m)}, true);
    }
    problem.exclude_self = c.exclude_self;
    if (c.random_tokens) problem.random_directions = at::randn({3, c.random_tokens, dh});
    AttentionOptions options;
    options.normalizer = c.normalizer;
    options.top_k = c.top_k;
    options.iterations = 6;
    auto values = at::randn({2, 3, m, dh});
    auto reference = OptimizationAttention(problem, values, options);
    torch::NoGradGuard no_grad;
    auto fast = OptimizationAttentionInference(problem, values, options, c.chunk);
    EXPECT_LE((fast - reference).abs().max().item<double>(), 1e-5)
        << "pad " << c.pad << " self " << c.exclude_self << " random " << c.random_tokens << " top_k " << c.top_k << " "
        << ToString(c.normalizer) << " chunk " << c.chunk;
  }
}

}  // namespace
}  // namespace detr::core

#include "server/core/kernels/optimization_attention_kernel.h"
#include "server/core/runtime/runtime.h"

#include <cstdlib>
#include <iostream>

namespace detr::core {
namespace {

// The vectorised kernels (float32; AVX-512F, AVX2) against the
// differentiable path, at the head widths they take, on inputs laid out as
// the model hands them over (heads split out of (B, n, H * dh): rows
// strided), with sizes that are not multiples of its 8-row blocks or
// 16-column groups.
class OptimizationAttentionKernelTest : public ::testing::TestWithParam<OptimizationBackend> {};

TEST_P(OptimizationAttentionKernelTest, EqualsTheDifferentiablePath) {
  const auto backend = GetParam();
  const auto isa =
      backend == OptimizationBackend::kAvx512 ? optimization_kernel::Isa::kAvx512 : optimization_kernel::Isa::kAvx2;
  if (!optimization_kernel::Available(isa, 32))
    GTEST_SKIP() << "this CPU lacks the instruction set, or it is not built";
  at::manual_seed(5);
  struct Case {
    int64_t batch, heads, n, m, dh;
    bool pad, exclude_self;
    int random_tokens, iterations;
    Normalizer normalizer;
    double power;
    int threads;
    double lambda;  // the kernel takes a row's coefficients one by one when sparse, all of them when dense
    bool normalize_inputs = true;
    double rho = 1.0;
  };
  const Case cases[] = {
      {1, 8, 37, 37, 32, false, true, 0, 5, Normalizer::kReluPower, 5, 2, 0.05},
      {1, 2, 400, 400, 32, true, true, 0, 5, Normalizer::kReluPower, 5, 2, 0.1},   // sparse: 0-5% non-zero
      {1, 8, 37, 37, 32, false, true, 0, 5, Normalizer::kReluPower, 5, 2, 0.001},  // dense coefficients
      {2, 3, 45, 45, 16, true, true, 0, 3, Normalizer::kReluPower, 5, 2, 0.01},
      {2, 2, 21, 50, 48, true, false, 3, 4, Normalizer::kAbsPower, 2.5, 2, 0.05},
      {2, 2, 21, 50, 48, true, false, 3, 4, Normalizer::kAbsPower, 2.5, 2, 0.002},
      {1, 2, 30, 30, 64, false, true, 2, 1, Normalizer::kReluPower, 3, 2, 0.05},
      {1, 1, 70, 70, 32, true, true, 0, 6, Normalizer::kReluPower, 5, 4, 0.05},  // one head, split over 4 threads
      {1, 2, 40, 40, 32, false, true, 0, 4, Normalizer::kReluPower, 5, 2, 0.05, false, 2.5},  // raw rows, rho 2.5
  };
  for (const auto& c : cases) {
    ConfigureThreads(c.threads);
    auto tokens = at::randn({c.batch, c.n, c.heads * c.dh});
    auto keys = at::randn({c.batch, c.m, c.heads * c.dh});
    const auto split = [&](const at::Tensor& x) { return x.view({c.batch, x.size(1), c.heads, c.dh}).transpose(1, 2); };
    OptimizationProblem problem;
    problem.queries = split(tokens);
    problem.dictionary = c.exclude_self ? problem.queries : split(keys);
    if (c.pad) {
      problem.key_padding = at::zeros({c.batch, c.m}, at::kBool);
      problem.key_padding.index_put_({c.batch - 1, at::indexing::Slice(c.m - 7, c.m)}, true);
    }
    problem.exclude_self = c.exclude_self;
    if (c.random_tokens) problem.random_directions = at::randn({c.heads, c.random_tokens, c.dh});
    AttentionOptions options;
    options.normalizer = c.normalizer;
    options.power = c.power;
    options.iterations = c.iterations;
    options.lambda = c.lambda;
    options.normalize_inputs = c.normalize_inputs;
    options.rho = c.rho;
    auto values = split(at::randn({c.batch, c.m, c.heads * c.dh}));
    // The reference runs in double: in float it is itself up to 2e-5 off at
    // 400 tokens (the kernel, which factors G in double, about 7e-6).
    auto exact = problem;
    exact.queries = problem.queries.to(at::kDouble);
    exact.dictionary = c.exclude_self ? exact.queries : problem.dictionary.to(at::kDouble);
    if (c.random_tokens) exact.random_directions = problem.random_directions.to(at::kDouble);
    auto reference = OptimizationAttention(exact, values.to(at::kDouble), options);
    torch::NoGradGuard no_grad;
    auto fast = OptimizationAttentionInference(problem, values, options, 0, backend);
    ASSERT_EQ(fast.scalar_type(), at::kFloat);
    EXPECT_LE((fast.to(at::kDouble) - reference).abs().max().item<double>(), 1e-5)
        << "dh " << c.dh << " n " << c.n << " m " << c.m << " pad " << c.pad << " self " << c.exclude_self << " random "
        << c.random_tokens << " K " << c.iterations << " power " << c.power << " lambda " << c.lambda << " normalize "
        << c.normalize_inputs << " rho " << c.rho;
    if (c.pad) {  // padded keys' content changes nothing
      auto changed = problem;
      changed.dictionary = problem.dictionary.clone();
      changed.dictionary.select(0, c.batch - 1).narrow(1, c.m - 7, 7).normal_();
      if (c.exclude_self) changed.queries = changed.dictionary;
      auto changed_values = values.clone();
      changed_values.select(0, c.batch - 1).narrow(1, c.m - 7, 7).normal_();
      auto again = OptimizationAttentionInference(changed, changed_values, options, 0, backend);
      // With exclude_self the padded rows are also queries: their own outputs change, nobody else's.
      const int64_t rows = c.exclude_self ? c.n - 7 : c.n;
      EXPECT_TRUE(again.narrow(2, 0, rows).equal(fast.narrow(2, 0, rows)));
    }
  }
  ConfigureThreads(2);
}

INSTANTIATE_TEST_SUITE_P(Isa, OptimizationAttentionKernelTest,
                         ::testing::Values(OptimizationBackend::kAvx512, OptimizationBackend::kAvx2),
                         [](const auto& info) {
                           return info.param == OptimizationBackend::kAvx512 ? "avx512" : "avx2";
                         });

// A forced kernel that cannot take the problem is an error, not a silent
// fallback: double inputs and the softmax normaliser.
TEST(OptimizationAttentionKernelChoiceTest, ForcedKernelRefusesWhatItCannotRun) {
  if (!optimization_kernel::Available(optimization_kernel::Isa::kAvx2, 32)) GTEST_SKIP() << "no kernel here";
  OptimizationProblem problem;
  problem.queries = at::randn({1, 2, 9, 32}, at::kDouble);
  problem.dictionary = problem.queries;
  auto values = at::randn({1, 2, 9, 32}, at::kDouble);
  AttentionOptions options;
  torch::NoGradGuard no_grad;
  EXPECT_THROW(OptimizationAttentionInference(problem, values, options, 0, OptimizationBackend::kAvx2), c10::Error);
  problem.queries = problem.queries.to(at::kFloat);
  problem.dictionary = problem.queries;
  options.normalizer = Normalizer::kSoftmax;
  EXPECT_THROW(OptimizationAttentionInference(problem, values.to(at::kFloat), options, 0, OptimizationBackend::kAvx2),
               c10::Error);
  EXPECT_NO_THROW(
      OptimizationAttentionInference(problem, values.to(at::kFloat), options, 0, OptimizationBackend::kAten));
}

// No query rows (an empty decoder input, say): an empty output, not a crash.
TEST(OptimizationAttentionKernelChoiceTest, NoQueryRowsGiveAnEmptyOutput) {
  if (!optimization_kernel::Available(optimization_kernel::Isa::kAvx2, 32)) GTEST_SKIP() << "no kernel here";
  OptimizationProblem problem;
  problem.queries = at::randn({1, 2, 0, 32});
  problem.dictionary = at::randn({1, 2, 9, 32});
  torch::NoGradGuard no_grad;
  auto out = OptimizationAttentionInference(problem, at::randn({1, 2, 9, 32}), AttentionOptions{}, 0,
                                            OptimizationBackend::kAvx2);
  EXPECT_EQ(out.sizes(), (at::IntArrayRef{1, 2, 0, 32}));
}

// The kernel's instruction-set cap: DETR_KERNEL_MAX_ISA by name, else the
// one that follows ONEDNN_MAX_CPU_ISA, and the cap this process runs under.
TEST(OptimizationAttentionKernelChoiceTest, TheCapFollowsTheEnvironment) {
  using optimization_kernel::Isa;
  EXPECT_EQ(optimization_kernel::IsaCap(nullptr), Isa::kAvx512);
  EXPECT_EQ(optimization_kernel::IsaCap("avx2"), Isa::kAvx2);
  EXPECT_EQ(optimization_kernel::IsaCap("NONE"), Isa::kNone);
  EXPECT_THROW(optimization_kernel::IsaCap("avx-2"), std::invalid_argument);
  EXPECT_EQ(optimization_kernel::IsaCapOfOneDnn(nullptr), Isa::kAvx512);
  EXPECT_EQ(optimization_kernel::IsaCapOfOneDnn("AVX512_CORE"), Isa::kAvx512);
  EXPECT_EQ(optimization_kernel::IsaCapOfOneDnn("avx2_vnni"), Isa::kAvx2);
  EXPECT_EQ(optimization_kernel::IsaCapOfOneDnn("SSE41"), Isa::kNone);

  const char* own = std::getenv(optimization_kernel::kIsaCapVariable);
  const Isa cap = own != nullptr ? optimization_kernel::IsaCap(own)
                                 : optimization_kernel::IsaCapOfOneDnn(std::getenv("ONEDNN_MAX_CPU_ISA"));
  EXPECT_LE(optimization_kernel::BestIsa(), cap);
  EXPECT_EQ(optimization_kernel::Available(Isa::kAvx512, 32),
            cap >= Isa::kAvx512 && optimization_kernel::BestIsa() == Isa::kAvx512);
  std::cout << "kernel: " << optimization_kernel::ToString(optimization_kernel::BestIsa()) << "\n";
}

}  // namespace
}  // namespace detr::core
