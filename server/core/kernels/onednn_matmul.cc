#include "server/core/kernels/onednn_matmul.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#ifdef DETR_HAVE_ONEDNN
#include <unordered_map>

#include "server/core/kernels/onednn_resnet.h"
#include "server/core/kernels/onednn_support.h"
#endif

namespace detr::core {

namespace {

at::Tensor AtenLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, bool relu) {
  auto y = at::linear(x, weight, bias);
  return relu ? y.relu_() : y;
}

}  // namespace

#ifndef DETR_HAVE_ONEDNN

at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, bool relu) {
  return AtenLinear(x, weight, bias, relu);
}

void MatmulInto(const at::Tensor& a, const at::Tensor& b, at::Tensor& out) { at::mm_out(out, a, b); }

#else

namespace {

using dnnl::memory;

memory::desc Desc(const at::Tensor& t) {
  return memory::desc({t.size(0), t.size(1)}, memory::data_type::f32, memory::dims{t.stride(0), t.stride(1)});
}

// dst = a · b (+ bias) (ReLU); a (M, K), b (K, N), dst (M, N), bias (1, N) or
// undefined. A scratchpad of its own per call (thread-safe). False, with
// nothing computed, when oneDNN has only its reference code for it here
// (never seen: its gemm has JIT code down to SSE4.1).
bool Run(const at::Tensor& a, const at::Tensor& b, const at::Tensor& bias, bool relu, at::Tensor& dst) {
  const auto& engine = onednn::Engine();
  dnnl::primitive_attr attr = onednn::UserScratchpad();
  if (relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  const auto a_desc = Desc(a), b_desc = Desc(b), dst_desc = Desc(dst);
  const auto bias_desc = bias.defined() ? Desc(bias) : memory::desc();
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_desc, b_desc, bias_desc, dst_desc), attr, engine);
  if (!OneDnnResNet::NotReference(pd.impl_info_str())) return false;
  const onednn::Scratchpad scratchpad(pd.scratchpad_desc());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(a_desc, engine, a.data_ptr())},
                                       {DNNL_ARG_WEIGHTS, memory(b_desc, engine, b.data_ptr())},
                                       {DNNL_ARG_DST, memory(dst_desc, engine, dst.data_ptr())},
                                       {DNNL_ARG_SCRATCHPAD, scratchpad.memory}};
  if (bias.defined()) args.emplace(DNNL_ARG_BIAS, memory(bias_desc, engine, bias.data_ptr()));
  dnnl::stream stream(engine);
  dnnl::matmul(pd).execute(stream, args);
  stream.wait();
  return true;
}

bool Eligible(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.dim() == 2 && (t.stride(0) == 1 || t.stride(1) == 1);
}

}  // namespace

at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, bool relu) {
  const bool fast = !at::GradMode::is_enabled() && x.device().is_cpu() && x.scalar_type() == at::kFloat &&
                    Eligible(weight) && (!bias.defined() || bias.is_contiguous());
  if (!fast) return AtenLinear(x, weight, bias, relu);
  const auto rows = x.reshape({-1, x.size(-1)}).contiguous();
  auto out = at::empty({rows.size(0), weight.size(0)}, x.options());
  if (!Run(rows, weight.t(), bias.defined() ? bias.view({1, -1}) : at::Tensor(), relu, out)) {
    return AtenLinear(x, weight, bias, relu);
  }
  auto sizes = x.sizes().vec();
  sizes.back() = weight.size(0);
  return out.view(sizes);
}

void MatmulInto(const at::Tensor& a, const at::Tensor& b, at::Tensor& out) {
  TORCH_CHECK(Eligible(a) && Eligible(b) && out.is_contiguous(), "MatmulInto: 2-D float CPU tensors");
  if (!Run(a, b, at::Tensor(), false, out)) at::mm_out(out, a, b);
}

#endif  // DETR_HAVE_ONEDNN

}  // namespace detr::core
