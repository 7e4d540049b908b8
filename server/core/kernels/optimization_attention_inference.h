// The inference path of optimization attention: the same computation as
// OptimizationAttention (optimization_attention.h), without autograd, with
// bounded memory and fewer passes over it.
//
// Where the CPU has AVX-512F or AVX2 and the problem is float32 with a power
// normaliser and no top-k, a vectorised kernel solves it
// (optimization_attention_kernel.h): 8 query rows of a head at a time, one
// dense product per step, the others over the sparse coefficients. Otherwise
// this ATen path:
// - Query rows are solved in chunks (each row is an independent LASSO
//   problem), so the coefficient state is chunk x m per head, never n x m.
// - G = D^T D + rho I is factorised once per head; E = G^-1 D^T is shared by
//   all chunks and steps.
// - The soft threshold, the constraint mask and the dual update are one
//   fused pass, which also prepares W = Z - U for the next step.
// - Buffers are allocated once per call and reused by every chunk and step.
#pragma once

#include <ATen/Tensor.h>

#include "server/core/api/model_config.h"
#include "server/core/model/optimization_attention.h"

namespace detr::core {

/// Which implementation runs. kAuto: the best kernel this CPU runs, where it
/// takes the problem, else ATen. The others force one, for tests and
/// benchmarks; a kernel that cannot run the problem here is an error.
enum class OptimizationBackend { kAuto, kAten, kAvx2, kAvx512 };

/// values (B, H, m, dh) -> (B, H, n, dh), equal to OptimizationAttention up
/// to float rounding (the kernel's result is a view of a (B, n, H, dh)
/// tensor, so merging the heads back costs no copy). chunk_rows: rows per
/// chunk on the ATen path, <= 0 for all at once; the kernel ignores it.
at::Tensor OptimizationAttentionInference(const OptimizationProblem& problem, const at::Tensor& values,
                                          const AttentionOptions& options, int64_t chunk_rows,
                                          OptimizationBackend backend = OptimizationBackend::kAuto);

}  // namespace detr::core
