#include "server/core/model/optimization_attention.h"

#include <ATen/ATen.h>

namespace detr::core {
namespace {

constexpr double kNormEps = 1e-12;   // guards the unit-norm scaling of all-zero rows
constexpr double kWeightEps = 1e-6;  // the spec's epsilon of the power normaliser

at::Tensor UnitRows(const at::Tensor& x) { return x / x.norm(2, -1, /*keepdim=*/true).clamp_min(kNormEps); }

// S_t(x) = sign(x) * max(|x| - t, 0)
at::Tensor SoftThreshold(const at::Tensor& x, double t) { return x.sign() * (x.abs() - t).relu(); }

}  // namespace

at::Tensor PrepareQueries(const at::Tensor& queries, const AttentionOptions& options) {
  return options.normalize_inputs ? UnitRows(queries) : queries;
}

at::Tensor PrepareDictionary(const OptimizationProblem& problem, const AttentionOptions& options) {
  auto dict = options.normalize_inputs ? UnitRows(problem.dictionary) : problem.dictionary;
  at::Tensor keep;  // (B, 1, m, 1)
  if (problem.key_padding.defined()) {
    keep = problem.key_padding.logical_not().to(dict.scalar_type()).view({dict.size(0), 1, -1, 1});
    dict = dict * keep;
  }
  if (!problem.random_directions.defined()) return dict;

  // Random rows scaled to the dictionary's RMS over its real (unpadded) entries.
  const auto dh = dict.size(-1);
  auto sum_squares = dict.pow(2).sum({2, 3}, /*keepdim=*/true);
  auto rows = keep.defined() ? keep.sum({2, 3}, true) : at::full_like(sum_squares, dict.size(2));
  auto sigma = (sum_squares / (rows.clamp_min(1) * dh)).sqrt();
  auto random = problem.random_directions.to(dict.options()).unsqueeze(0) * sigma;
  return at::cat({dict, random.detach()}, 2);
}

at::Tensor AllowedCoefficients(const OptimizationProblem& problem) {
  const auto batch = problem.queries.size(0);
  const auto n = problem.queries.size(2);
  const auto m = problem.dictionary.size(2);
  const auto r = problem.random_directions.defined() ? problem.random_directions.size(1) : 0;
  auto options = problem.queries.options();
  auto allowed = at::ones({batch, 1, n, m + r}, options);
  if (problem.key_padding.defined()) {
    auto keep = problem.key_padding.logical_not().to(options.dtype());
    allowed.slice(3, 0, m).mul_(keep.view({batch, 1, 1, m}));
  }
  if (problem.exclude_self) {
    TORCH_CHECK(n == m, "exclude_self needs as many queries as keys, got ", n, " and ", m);
    allowed.slice(3, 0, m).mul_(1 - at::eye(n, options));
  }
  return allowed;
}

at::Tensor SolveCoefficients(const at::Tensor& queries, const at::Tensor& dictionary, const at::Tensor& allowed,
                             const AttentionOptions& options) {
  const auto dh = dictionary.size(-1);
  const double threshold = options.lambda / options.rho;
  auto dict_t = dictionary.transpose(-1, -2);  // (B, H, dh, m)
  auto gram = at::matmul(dict_t, dictionary) + options.rho * at::eye(dh, dictionary.options());
  auto factor = at::linalg_cholesky(gram);            // G = L L^T
  auto solve_t = at::cholesky_solve(dict_t, factor);  // G^-1 D^T

  // Step 1 from Z = U = 0: A = Q G^-1 D^T. Later steps, with W = Z - U:
  //   A = W + (Q - W D) G^-1 D^T      (push-through + Woodbury, no m x m matrix)
  auto a = at::matmul(queries, solve_t);
  auto z = SoftThreshold(a, threshold) * allowed;
  auto u = a - z;
  for (int step = 1; step < options.iterations; ++step) {
    auto w = z - u;
    a = w + at::matmul(queries - at::matmul(w, dictionary), solve_t);
    z = SoftThreshold(a + u, threshold) * allowed;
    u = u + a - z;
  }
  return z;
}

at::Tensor SolveCoefficientsDirect(const at::Tensor& queries, const at::Tensor& dictionary, const at::Tensor& allowed,
                                   const AttentionOptions& options) {
  const auto m = dictionary.size(-2);
  const double threshold = options.lambda / options.rho;
  auto dict_t = dictionary.transpose(-1, -2);
  auto inverse = at::linalg_inv(at::matmul(dictionary, dict_t) + options.rho * at::eye(m, dictionary.options()));
  auto qd = at::matmul(queries, dict_t);
  auto z = at::zeros_like(qd);
  auto u = at::zeros_like(qd);
  for (int step = 0; step < options.iterations; ++step) {
    auto a = at::matmul(qd + options.rho * (z - u), inverse);
    z = SoftThreshold(a + u, threshold) * allowed;
    u = u + a - z;
  }
  return z;
}

at::Tensor CoefficientsToWeights(const at::Tensor& coefficients, const at::Tensor& allowed,
                                 const AttentionOptions& options) {
  auto z = coefficients;
  auto mask = allowed;
  if (options.top_k > 0 && options.top_k < z.size(-1)) {
    auto score = options.normalizer == Normalizer::kAbsPower ? z.abs() : z;
    auto index = std::get<1>(score.topk(options.top_k, -1));
    auto keep = at::zeros_like(z).scatter_(-1, index, 1.0);
    z = z * keep;
    mask = mask * keep;
  }
  switch (options.normalizer) {
    case Normalizer::kSoftmax: return z.masked_fill(mask == 0, -std::numeric_limits<double>::infinity()).softmax(-1);
    case Normalizer::kAbsPower: {
      auto w = z.abs().pow(options.power);
      return w / (w.sum(-1, true) + kWeightEps);
    }
    case Normalizer::kReluPower:
    default: {
      auto w = z.relu().pow(options.power);
      return w / (w.sum(-1, true) + kWeightEps);
    }
  }
}

at::Tensor OptimizationAttention(const OptimizationProblem& problem, const at::Tensor& values,
                                 const AttentionOptions& options) {
  auto allowed = AllowedCoefficients(problem);
  auto queries = PrepareQueries(problem.queries, options);
  auto dictionary = PrepareDictionary(problem, options);
  auto z = SolveCoefficients(queries, dictionary, allowed, options);
  auto weights = CoefficientsToWeights(z, allowed, options);
  // Random tokens carry zero values: only the first m columns reach the output.
  return at::matmul(weights.slice(-1, 0, values.size(2)), values);
}

}  // namespace detr::core
