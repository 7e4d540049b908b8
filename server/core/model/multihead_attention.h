// One attention site of DETR, with the parameters of the official
// nn.MultiheadAttention (in_proj_weight, in_proj_bias, out_proj) and one of the
// three attention types of docs/optimization-attention.md.
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "server/core/api/model_config.h"
#include "server/core/io/tensor_io.h"

namespace detr::core {

/// The feature map's height and width when a site's tokens are its pixels in
/// row-major order (encoder self-attention); {0, 0} elsewhere.
struct TokenGrid {
  int64_t height = 0, width = 0;
};

class MultiheadAttentionImpl : public torch::nn::Module {
 public:
  /// site_id names this instance (e.g. "encoder.self.3"); it seeds the random
  /// tokens, so that each site draws its own, reproducibly.
  MultiheadAttentionImpl(int64_t embed_dim, int64_t num_heads, AttentionSite site, const AttentionOptions& options,
                         const std::string& site_id);

  /// Batch-first: query (B, n, d) with its positional term, key (B, m, d) with
  /// its positional term, value (B, m, d) without; key_padding (B, m) bool,
  /// true = padding, or undefined; grid: the tokens' feature map, which
  /// windowed pooling needs. Returns (B, n, d).
  at::Tensor forward(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                     const at::Tensor& key_padding = {}, TokenGrid grid = {});

  /// Softmax and linear sites hold the q, k and v rows of in_proj (3d x d);
  /// the others hold the v rows only (d x d). Given a checkpoint written for a softmax
  /// site, slices out the v rows in place and returns one line per dropped
  /// tensor for the load report. An optimization site with
  /// query_key_projection given a checkpoint without q/k rows gets identity
  /// rows and zero biases (reported). A site with position_projection whose
  /// checkpoint has no pos_proj_weight gets the identity (so it computes what
  /// the checkpoint did), also reported. `prefix` is this module's key prefix.
  std::vector<std::string> AdaptCheckpoint(const std::string& prefix, TensorMap& state) const;

  AttentionType type() const { return options_.type; }
  /// Dropout on the attention weights of softmax sites while training with
  /// gradients (the official nn.MultiheadAttention's dropout); other types
  /// have no weight matrix to drop from.
  void set_weight_dropout(double p) { weight_dropout_ = p; }
  /// Whether this site projects queries and keys (softmax, linear, and
  /// optimization with query_key_projection).
  bool HasQkProjections() const {
    return options_.type == AttentionType::kSoftmax || options_.type == AttentionType::kLinear ||
           (options_.type == AttentionType::kOptimization && options_.query_key_projection);
  }
  /// The positional term a query (key) of this site adds: `pos` itself, or
  /// with position_projection its learned map (the spec's deviation, see
  /// AttentionOptions::position_projection). pos: (B, L, d) or (L, d).
  at::Tensor QueryPosition(const at::Tensor& pos) const { return PositionTerm(pos, 0); }
  at::Tensor KeyPosition(const at::Tensor& pos) const { return PositionTerm(pos, 1); }
  bool HasPositionProjection() const { return options_.position_projection; }
  const AttentionOptions& options() const { return options_; }
  AttentionSite site() const { return site_; }

  at::Tensor in_proj_weight, in_proj_bias;
  at::Tensor pos_proj_weight;  // (2d, d): query rows, then key rows; only with position_projection
  torch::nn::Linear out_proj{nullptr};

 private:
  // (B, L, d) -> (B, H, L, dh)
  at::Tensor SplitHeads(const at::Tensor& x) const;
  // Softmax attention, with weight dropout while training.
  at::Tensor Softmax(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& key_padding) const;
  at::Tensor Projected(const at::Tensor& x, int64_t row) const;       // row block 0=q 1=k 2=v
  at::Tensor PositionTerm(const at::Tensor& pos, int64_t row) const;  // row block 0=q 1=k
  // A d-row (v only) checkpoint entry -> identity q/k rows on top, for query_key_projection.
  void AddIdentityQk(const std::string& prefix, TensorMap& state, std::vector<std::string>& report) const;

  int64_t embed_dim_, num_heads_, head_dim_;
  AttentionSite site_;
  AttentionOptions options_;
  at::Tensor random_directions_;  // (H, r, dh), drawn once at construction
  at::Generator resample_;        // training's stream of new draws (random_tokens_resample: train)
  double weight_dropout_ = 0;
};
TORCH_MODULE(MultiheadAttention);

/// Softmax attention on heads: q, k, v (B, H, L, dh), key_padding (B, m) or
/// undefined -> (B, H, n, dh). Uses fused scaled-dot-product attention where
/// the LibTorch has it (2.0 and later); before that, CPU inference takes the
/// blocked path of softmax_attention_inference.h, training the unfused one.
at::Tensor SoftmaxAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& key_padding);

/// Kernelised linear attention (Katharopoulos et al. 2020) on heads, with
/// phi(x) = elu(x) + 1: out_i = phi(q_i) S / (phi(q_i) z), S = sum_j phi(k_j)
/// v_j^T, z = sum_j phi(k_j), over unpadded keys only. O(n dh^2), no n x m
/// matrix. Differentiable.
at::Tensor LinearAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const at::Tensor& key_padding);

/// Every query takes the mean of the unpadded value rows: v (B, H, m, dh) ->
/// (B, H, n, dh). With window > 0 (self-attention on a grid, n = m = height
/// x width), the mean of the unpadded rows in the window x window square
/// around the query's grid cell. Differentiable.
at::Tensor PoolingAttention(int64_t n, const at::Tensor& v, const at::Tensor& key_padding, int64_t window = 0,
                            TokenGrid grid = {});

/// The plain path, as eager PyTorch code writes it: the whole (B, H, n, m)
/// score tensor, softmax, product with v. Differentiable. The benchmarks
/// compare against it.
at::Tensor SoftmaxAttentionUnfused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const at::Tensor& key_padding, double weight_dropout = 0);

}  // namespace detr::core
