// The paper's optimization attention (docs/optimization-attention.md): each
// query row is reconstructed as a sparse combination of the dictionary rows
// by K unrolled ADMM steps on a LASSO problem; the coefficients, normalised,
// weight the values.
//
// Tensor layout throughout: (B, H, rows, dh), heads split, batch first.
#pragma once

#include <ATen/Tensor.h>

#include "server/core/api/model_config.h"

namespace detr::core {

/// What the solver needs besides the options of the site.
struct OptimizationProblem {
  at::Tensor queries;            // (B, H, n, dh)
  at::Tensor dictionary;         // (B, H, m, dh)
  at::Tensor key_padding;        // (B, m) bool, true = padding; undefined = none
  bool exclude_self = false;     // query i may not use dictionary row i (needs n == m)
  at::Tensor random_directions;  // (H, r, dh) N(0, 1) draws; undefined = no random tokens
};

/// Which coefficients may be non-zero: (B, 1 or H, n, m + r) float 0/1. Padded
/// keys, and the query's own token when excluding self, are 0.
at::Tensor AllowedCoefficients(const OptimizationProblem& problem);

/// The dictionary the solver sees: rows normalised (if asked), padded rows
/// zeroed, random rows appended. Returns (B, H, m + r, dh).
at::Tensor PrepareDictionary(const OptimizationProblem& problem, const AttentionOptions& options);
/// The queries the solver sees: rows normalised if asked. (B, H, n, dh)
at::Tensor PrepareQueries(const at::Tensor& queries, const AttentionOptions& options);

/// Sparse coefficients Z (B, H, n, m + r) after options.iterations ADMM steps,
/// by the Woodbury form: only dh x dh matrices are factorised. Differentiable.
at::Tensor SolveCoefficients(const at::Tensor& queries, const at::Tensor& dictionary, const at::Tensor& allowed,
                             const AttentionOptions& options);

/// The same iteration with the explicit (D D^T + rho I)^-1 (m x m). Reference
/// for tests only: quadratic memory in m.
at::Tensor SolveCoefficientsDirect(const at::Tensor& queries, const at::Tensor& dictionary, const at::Tensor& allowed,
                                   const AttentionOptions& options);

/// Coefficients -> attention weights (B, H, n, m + r): top-k (if set), then the
/// normaliser (relu_power, abs_power or softmax). Disallowed entries get 0.
at::Tensor CoefficientsToWeights(const at::Tensor& coefficients, const at::Tensor& allowed,
                                 const AttentionOptions& options);

/// The whole site without projections: values (B, H, m, dh) -> (B, H, n, dh).
at::Tensor OptimizationAttention(const OptimizationProblem& problem, const at::Tensor& values,
                                 const AttentionOptions& options);

}  // namespace detr::core
