#include "server/core/model/multihead_attention.h"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <torch/nn/init.h>
#include <torch/version.h>

#include "server/core/kernels/onednn_matmul.h"
#include "server/core/model/optimization_attention.h"
#include "server/core/kernels/optimization_attention_inference.h"
#include "server/core/kernels/softmax_attention_inference.h"

namespace detr::core {
namespace {

// FNV-1a: a stable hash, so a site's random tokens are the same on every
// platform and build.
std::uint64_t StableHash(const std::string& text) {
  std::uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

// Two d x d identities stacked (2d x d): the starting query and key maps of
// position_projection and query_key_projection.
at::Tensor StackedIdentity(int64_t d, const at::TensorOptions& options = {}) {
  return at::eye(d, options).repeat({2, 1});
}

// (B, m) bool -> (B, 1, 1, m) with -inf on padded keys, broadcast over heads and queries
at::Tensor AdditivePaddingMask(const at::Tensor& key_padding, const at::TensorOptions& options) {
  return AdditiveKeyMask(key_padding, options).view({key_padding.size(0), 1, 1, key_padding.size(1)});
}

}  // namespace

at::Tensor SoftmaxAttentionUnfused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const at::Tensor& key_padding, double weight_dropout) {
  auto scores = at::matmul(q * (1.0 / std::sqrt(static_cast<double>(q.size(-1)))), k.transpose(-2, -1));
  if (key_padding.defined()) scores = scores + AdditivePaddingMask(key_padding, q.options());
  auto weights = scores.softmax(-1);
  if (weight_dropout > 0) weights = at::dropout(weights, weight_dropout, /*train=*/true);
  return at::matmul(weights, v);
}

at::Tensor LinearAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const at::Tensor& key_padding) {
  auto phi_q = at::elu(q) + 1;  // (B, H, n, dh)
  auto phi_k = at::elu(k) + 1;  // (B, H, m, dh)
  if (key_padding.defined()) {
    auto keep = key_padding.logical_not().to(k.scalar_type()).view({k.size(0), 1, k.size(2), 1});
    phi_k = phi_k * keep;  // padded keys add nothing to S or z
  }
  auto state = at::matmul(phi_k.transpose(-2, -1), v);               // (B, H, dh, dh)
  auto normaliser = at::matmul(phi_q, phi_k.sum(-2).unsqueeze(-1));  // (B, H, n, 1)
  return at::matmul(phi_q, state) / normaliser.clamp_min(1e-6);
}

namespace {

// (N, C, H, W) -> the sum over each window x window square (zeros beyond the
// edges), same size.
at::Tensor WindowSums(const at::Tensor& x, int64_t window) {
  return at::avg_pool2d(x, {window, window}, {1, 1}, {window / 2, window / 2}, /*ceil_mode=*/false,
                        /*count_include_pad=*/true, /*divisor_override=*/1);
}

at::Tensor WindowedPooling(const at::Tensor& v, const at::Tensor& key_padding, int64_t window, TokenGrid grid) {
  const int64_t batch = v.size(0), heads = v.size(1), m = v.size(2), dh = v.size(3);
  TORCH_CHECK(grid.height * grid.width == m, "windowed pooling needs the tokens' grid: ", grid.height, " x ",
              grid.width, " for ", m, " tokens");
  auto keep = key_padding.defined() ? key_padding.logical_not().to(v.scalar_type()) : at::ones({batch, m}, v.options());
  auto values = (v * keep.view({batch, 1, m, 1})).transpose(2, 3).reshape({batch * heads, dh, grid.height, grid.width});
  auto sums = WindowSums(values, window).view({batch, heads, dh, m}).transpose(2, 3);
  auto counts = WindowSums(keep.view({batch, 1, grid.height, grid.width}), window).view({batch, 1, m, 1});
  return sums / counts.clamp_min(1);
}

}  // namespace

at::Tensor PoolingAttention(int64_t n, const at::Tensor& v, const at::Tensor& key_padding, int64_t window,
                            TokenGrid grid) {
  if (window > 0) {
    TORCH_CHECK(n == v.size(2), "windowed pooling is self-attention: ", n, " queries for ", v.size(2), " tokens");
    return WindowedPooling(v, key_padding, window, grid);
  }
  at::Tensor mean;
  if (key_padding.defined()) {
    auto keep = key_padding.logical_not().to(v.scalar_type()).view({v.size(0), 1, v.size(2), 1});
    mean = (v * keep).sum(-2, /*keepdim=*/true) / keep.sum(-2, /*keepdim=*/true).clamp_min(1);
  } else {
    mean = v.mean(-2, /*keepdim=*/true);
  }
  return mean.expand({v.size(0), v.size(1), n, v.size(3)});
}

at::Tensor SoftmaxAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& key_padding) {
#if TORCH_VERSION_MAJOR >= 2
  at::Tensor mask;
  if (key_padding.defined()) mask = AdditivePaddingMask(key_padding, q.options());
  return at::scaled_dot_product_attention(q, k, v, mask);
#else
  // CPU inference: the blocked path that keeps each block's scores in cache.
  if (!at::GradMode::is_enabled() && q.device().is_cpu() && q.scalar_type() == at::kFloat) {
    return SoftmaxAttentionInference(q, k, v, key_padding);
  }
  return SoftmaxAttentionUnfused(q, k, v, key_padding);
#endif
}

MultiheadAttentionImpl::MultiheadAttentionImpl(int64_t embed_dim, int64_t num_heads, AttentionSite site,
                                               const AttentionOptions& options, const std::string& site_id)
    : embed_dim_(embed_dim), num_heads_(num_heads), head_dim_(embed_dim / num_heads), site_(site), options_(options) {
  TORCH_CHECK(embed_dim % num_heads == 0, "embed_dim must be divisible by num_heads");
  const int64_t rows = HasQkProjections() ? 3 * embed_dim : embed_dim;
  // nn.MultiheadAttention's initialisation: xavier-uniform weights, zero biases.
  in_proj_weight = register_parameter("in_proj_weight", at::empty({rows, embed_dim}));
  torch::nn::init::xavier_uniform_(in_proj_weight);
  in_proj_bias = register_parameter("in_proj_bias", at::zeros({rows}));
  out_proj = register_module("out_proj", torch::nn::Linear(embed_dim, embed_dim));
  if (options.position_projection) {
    // The identity: the site starts as the spec's, whatever it is fine-tuned from.
    pos_proj_weight = register_parameter("pos_proj_weight", StackedIdentity(embed_dim));
  }
  {
    torch::NoGradGuard no_grad;
    out_proj->bias.zero_();
  }
  if (options.type == AttentionType::kOptimization && options.random_tokens > 0) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(options.random_seed ^ StableHash(site_id));
    random_directions_ = at::randn({num_heads, options.random_tokens, head_dim_}, generator, at::kFloat);
    // Its own stream, so that training's draws never move the fixed one.
    if (options.random_tokens_resample_train) {
      resample_ = at::make_generator<at::CPUGeneratorImpl>(options.random_seed ^ StableHash(site_id + "/train"));
    }
  }
}

at::Tensor MultiheadAttentionImpl::Softmax(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const at::Tensor& key_padding) const {
  if (weight_dropout_ > 0 && is_training() && at::GradMode::is_enabled()) {
    return SoftmaxAttentionUnfused(q, k, v, key_padding, weight_dropout_);
  }
  return SoftmaxAttention(q, k, v, key_padding);
}

at::Tensor MultiheadAttentionImpl::SplitHeads(const at::Tensor& x) const {
  return x.view({x.size(0), x.size(1), num_heads_, head_dim_}).transpose(1, 2);
}

at::Tensor MultiheadAttentionImpl::Projected(const at::Tensor& x, int64_t row) const {
  const int64_t begin = HasQkProjections() ? row * embed_dim_ : 0;
  return Linear(x, in_proj_weight.narrow(0, begin, embed_dim_), in_proj_bias.narrow(0, begin, embed_dim_));
}

at::Tensor MultiheadAttentionImpl::PositionTerm(const at::Tensor& pos, int64_t row) const {
  if (!pos_proj_weight.defined()) return pos;
  return at::matmul(pos, pos_proj_weight.narrow(0, row * embed_dim_, embed_dim_).t());
}

at::Tensor MultiheadAttentionImpl::forward(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                                           const at::Tensor& key_padding, TokenGrid grid) {
  const int64_t batch = query.size(0), n = query.size(1);
  auto v = SplitHeads(Projected(value, 2));
  at::Tensor heads;
  switch (options_.type) {
    case AttentionType::kSoftmax:
    case AttentionType::kLinear: {
      at::Tensor q, k;
      if (query.is_same(key)) {  // self-attention: one matmul for q and k
        auto qk = Linear(query, in_proj_weight.narrow(0, 0, 2 * embed_dim_), in_proj_bias.narrow(0, 0, 2 * embed_dim_))
                      .chunk(2, -1);
        q = qk[0];
        k = qk[1];
      } else {
        q = Projected(query, 0);
        k = Projected(key, 1);
      }
      if (options_.type == AttentionType::kLinear) {
        heads = LinearAttention(SplitHeads(q), SplitHeads(k), v, key_padding);
      } else {
        heads = Softmax(SplitHeads(q), SplitHeads(k), v, key_padding);
      }
      break;
    }
    case AttentionType::kPooling: heads = PoolingAttention(n, v, key_padding, options_.window, grid); break;
    case AttentionType::kSoftmaxIdentityQk: heads = Softmax(SplitHeads(query), SplitHeads(key), v, key_padding); break;
    case AttentionType::kOptimization: {
      OptimizationProblem problem;
      problem.queries = SplitHeads(HasQkProjections() ? Projected(query, 0) : query);
      problem.dictionary = SplitHeads(HasQkProjections() ? Projected(key, 1) : key);
      problem.key_padding = key_padding;
      problem.exclude_self = options_.ExcludesSelf(site_);
      problem.random_directions = random_directions_;
      if (resample_.defined() && is_training() && at::GradMode::is_enabled()) {
        // (at::randn takes the generator's lock itself.)
        problem.random_directions = at::randn(random_directions_.sizes(), resample_, at::kFloat);
      }
      // Inference on the CPU takes the chunked, fused path (its fused loops are
      // CPU code); training, and other devices, the differentiable one.
      const bool fused = !at::GradMode::is_enabled() && query.device().is_cpu();
      heads = fused ? OptimizationAttentionInference(problem, v, options_, options_.query_chunk)
                    : OptimizationAttention(problem, v, options_);
      break;
    }
  }
  return Linear(heads.transpose(1, 2).reshape({batch, n, embed_dim_}), out_proj->weight, out_proj->bias);
}

void MultiheadAttentionImpl::AddIdentityQk(const std::string& prefix, TensorMap& state,
                                           std::vector<std::string>& report) const {
  const auto weight = state.find(prefix + "in_proj_weight");
  const auto bias = state.find(prefix + "in_proj_bias");
  if (weight == state.end() || bias == state.end() || weight->second.dim() != 2 ||
      weight->second.size(0) != embed_dim_ || bias->second.numel() != embed_dim_) {
    return;  // already q, k and v rows, or malformed: the loader names the problem
  }
  weight->second = at::cat({StackedIdentity(embed_dim_, weight->second.options()), weight->second});
  bias->second = at::cat({at::zeros({2 * embed_dim_}, bias->second.options()), bias->second});
  report.push_back(prefix +
                   "in_proj_weight: no q/k rows in the checkpoint; they start as the identity "
                   "(query_key_projection)");
}

std::vector<std::string> MultiheadAttentionImpl::AdaptCheckpoint(const std::string& prefix, TensorMap& state) const {
  std::vector<std::string> dropped;
  if (pos_proj_weight.defined() && state.find(prefix + "pos_proj_weight") == state.end()) {
    state.emplace(prefix + "pos_proj_weight", StackedIdentity(embed_dim_));
    dropped.push_back(prefix + "pos_proj_weight: not in the checkpoint; starts as the identity (position_projection)");
  }
  if (HasQkProjections()) {
    if (options_.type == AttentionType::kOptimization) AddIdentityQk(prefix, state, dropped);
    return dropped;
  }
  for (const char* name : {"in_proj_weight", "in_proj_bias"}) {
    const auto it = state.find(prefix + name);
    if (it == state.end() || it->second.dim() == 0 || it->second.size(0) != 3 * embed_dim_) continue;
    it->second = it->second.narrow(0, 2 * embed_dim_, embed_dim_);
    dropped.push_back(prefix + name + ": q/k rows [0, " + std::to_string(2 * embed_dim_) + ") unused by " +
                      ToString(options_.type) + " attention (skipped)");
  }
  return dropped;
}

}  // namespace detr::core
