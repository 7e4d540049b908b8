#include "server/core/optimization_attention_inference.h"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

namespace detr {
namespace {

// One ADMM Z/U step for a chunk, in one pass over its state:
//   s = A + U;  Z = S_t(s) * allowed;  U = s - Z;  W = Z - U
// (U + A - Z = s - Z is the spec's dual update). A is read, Z/U/W written.
// State is (B, H, rows, cols) contiguous; allowed is (B, rows, cols).
template <typename T>
void FusedThresholdAndDual(const T* a, T* z, T* u, T* w, const T* allowed, int64_t batch, int64_t heads,
                           int64_t rows, int64_t cols, T threshold, bool first_step) {
  const int64_t plane = rows * cols;
  at::parallel_for(0, batch * heads * rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / (heads * rows);
      const int64_t row = r % rows;
      const T* mask = allowed + b * plane + row * cols;
      const int64_t offset = r * cols;
      for (int64_t j = 0; j < cols; ++j) {
        const T s = a[offset + j] + (first_step ? T(0) : u[offset + j]);
        const T magnitude = std::abs(s) - threshold;
        const T zj = magnitude > 0 ? std::copysign(magnitude, s) * mask[j] : T(0);
        const T uj = s - zj;
        z[offset + j] = zj;
        u[offset + j] = uj;
        w[offset + j] = zj - uj;
      }
    }
  });
}

// Z -> weights in place for the power normalisers: |z|^p or relu(z)^p, then
// divided by the row sum + eps.
template <typename T>
void FusedPowerNormalise(T* z, int64_t rows, int64_t cols, T power, bool relu) {
  constexpr T kEps = T(1e-6);
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      T* row = z + r * cols;
      T sum = 0;
      for (int64_t j = 0; j < cols; ++j) {
        const T base = relu ? std::max(row[j], T(0)) : std::abs(row[j]);
        const T value = power == T(5) ? base * base * base * base * base : std::pow(base, power);
        row[j] = value;
        sum += value;
      }
      const T scale = T(1) / (sum + kEps);
      for (int64_t j = 0; j < cols; ++j) row[j] *= scale;
    }
  });
}

// (B, 1, rows, cols) allowed coefficients of query rows [begin, begin + rows).
at::Tensor AllowedChunk(const at::Tensor& keep, bool exclude_self, int64_t begin, int64_t rows, int64_t cols,
                        const at::TensorOptions& options) {
  auto allowed = keep.defined() ? keep.expand({keep.size(0), rows, cols}).contiguous()
                                : at::ones({1, rows, cols}, options);
  // Columns [begin, begin + rows) hold the chunk's own tokens.
  if (exclude_self) {
    auto diagonal = allowed.slice(2, begin, begin + rows).diagonal(0, 1, 2);  // (B, rows): entry (i, begin + i)
    diagonal.zero_();
  }
  return allowed;
}

}  // namespace

at::Tensor OptimizationAttentionInference(const OptimizationProblem& problem, const at::Tensor& values,
                                          const AttentionOptions& options, int64_t chunk_rows) {
  const auto batch = problem.queries.size(0), heads = problem.queries.size(1);
  const auto n = problem.queries.size(2), m = problem.dictionary.size(2), dh = problem.dictionary.size(3);
  auto queries = PrepareQueries(problem.queries, options).contiguous();
  auto dictionary = PrepareDictionary(problem, options).contiguous();  // (B, H, m + r, dh)
  const auto cols = dictionary.size(2);
  const auto tensor_options = queries.options();

  // keep: (B, 1, cols) 0/1 for padded keys (random tokens always kept).
  at::Tensor keep;
  if (problem.key_padding.defined()) {
    keep = at::ones({batch, 1, cols}, tensor_options);
    keep.slice(2, 0, m).copy_(problem.key_padding.logical_not().to(tensor_options.dtype()).unsqueeze(1));
  }
  TORCH_CHECK(!problem.exclude_self || n == m, "exclude_self needs as many queries as keys");

  auto dict_t = dictionary.transpose(-1, -2);
  auto gram = at::matmul(dict_t, dictionary);
  gram.diagonal(0, -2, -1).add_(options.rho);
  auto solve_t = at::cholesky_solve(dict_t.contiguous(), at::linalg_cholesky(gram)).contiguous();  // (B, H, dh, cols)

  const int64_t chunk = chunk_rows > 0 ? std::min(chunk_rows, n) : n;
  auto a = at::empty({batch, heads, chunk, cols}, tensor_options);
  auto z = at::empty_like(a), u = at::empty_like(a), w = at::empty_like(a);
  auto residual = at::empty({batch, heads, chunk, dh}, tensor_options);
  auto out = at::empty({batch, heads, n, dh}, tensor_options);
  const double threshold = options.lambda / options.rho;
  const bool fused_normaliser = options.top_k == 0 && options.normalizer != Normalizer::kSoftmax;

  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t rows = std::min(chunk, n - begin);
    auto q = queries.slice(2, begin, begin + rows);
    auto A = a.slice(2, 0, rows), Z = z.slice(2, 0, rows), U = u.slice(2, 0, rows), W = w.slice(2, 0, rows);
    auto R = residual.slice(2, 0, rows);
    if (rows != chunk) {  // the last, shorter chunk: contiguous views of the front of each buffer
      A = a.view(-1).narrow(0, 0, batch * heads * rows * cols).view({batch, heads, rows, cols});
      Z = z.view(-1).narrow(0, 0, A.numel()).view(A.sizes());
      U = u.view(-1).narrow(0, 0, A.numel()).view(A.sizes());
      W = w.view(-1).narrow(0, 0, A.numel()).view(A.sizes());
      R = residual.view(-1).narrow(0, 0, batch * heads * rows * dh).view({batch, heads, rows, dh});
    }
    auto allowed = AllowedChunk(keep, problem.exclude_self, begin, rows, cols, tensor_options);
    const auto allowed_batch = allowed.size(0) == batch ? allowed : allowed.expand({batch, rows, cols}).contiguous();

    const int64_t bh = batch * heads;
    auto A3 = A.view({bh, rows, cols}), W3 = W.view({bh, rows, cols}), R3 = R.view({bh, rows, dh});
    auto q3 = q.reshape({bh, rows, dh});
    auto D3 = dictionary.view({bh, cols, dh}), E3 = solve_t.view({bh, dh, cols});
    at::bmm_out(A3, q3, E3);  // step 1: A = Q G^-1 D^T
    for (int step = 0; step < options.iterations; ++step) {
      if (step > 0) {
        at::bmm_out(R3, W3, D3);  // R = W D
        R3.neg_().add_(q3);       // R = Q - W D
        A3.copy_(W3);
        A3.baddbmm_(R3, E3);      // A = W + R G^-1 D^T
      }
      AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "optimization_attention_step", [&] {
        FusedThresholdAndDual<scalar_t>(A.data_ptr<scalar_t>(), Z.data_ptr<scalar_t>(), U.data_ptr<scalar_t>(),
                                        W.data_ptr<scalar_t>(), allowed_batch.data_ptr<scalar_t>(), batch, heads, rows,
                                        cols, static_cast<scalar_t>(threshold), step == 0);
      });
    }
    at::Tensor weights;
    if (fused_normaliser) {
      AT_DISPATCH_FLOATING_TYPES(Z.scalar_type(), "optimization_attention_normalise", [&] {
        FusedPowerNormalise<scalar_t>(Z.data_ptr<scalar_t>(), batch * heads * rows, cols,
                                      static_cast<scalar_t>(options.power), options.normalizer == Normalizer::kReluPower);
      });
      weights = Z;
    } else {
      weights = CoefficientsToWeights(Z, allowed_batch.unsqueeze(1), options);
    }
    out.slice(2, begin, begin + rows).copy_(at::matmul(weights.slice(-1, 0, m), values));
  }
  return out;
}

}  // namespace detr
