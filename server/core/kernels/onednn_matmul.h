// Matrix products for CPU inference through oneDNN's matmul (brgemm kernels)
// when the project is built with oneDNN (libdnnl-dev), LibTorch otherwise.
//
// Why: on this CPU, LibTorch's products go to OpenBLAS, which measured 5-15%
// slower on the transformer's linear layers (850x256 by 256x2048: 5.6 against
// 4.7 ms) and about half as fast on attention's head-width-32 products
// (8 heads, 850x32 by 32x850: 6.4 against 2.9 ms). oneDNN's primitive cache
// makes building the primitive for a shape it has seen cheap, so these
// functions keep no state.
#pragma once

#include <ATen/Tensor.h>

namespace detr::core {

/// x (..., K) times weight (N, K) transposed, plus bias (N) if defined, then
/// ReLU if `relu`: what at::linear (and a ReLU) computes. Without autograd on
/// float CPU tensors it runs through oneDNN; otherwise through at::linear.
at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, bool relu = false);

/// out = a (M, K) times b (K, N), for 2-D float CPU tensors whose rows or
/// columns are contiguous (a transposed view is fine); out (M, N) contiguous.
/// No autograd.
void MatmulInto(const at::Tensor& a, const at::Tensor& b, at::Tensor& out);

}  // namespace detr::core
