#ifdef DETR_HAVE_ONEDNN

#include "server/core/kernels/onednn_support.h"

#include <algorithm>

#include <ATen/ATen.h>

namespace detr::core::onednn {

const dnnl::engine& Engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);  // immutable once built; thread-safe init
  return engine;
}

std::string EffectiveIsaName() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "SSE4.1";
    case dnnl::cpu_isa::avx: return "AVX";
    case dnnl::cpu_isa::avx2: return "AVX2";
    case dnnl::cpu_isa::avx2_vnni: return "AVX2-VNNI";
    case dnnl::cpu_isa::avx512_core: return "AVX-512";
    case dnnl::cpu_isa::avx512_core_vnni: return "AVX-512 VNNI";
    case dnnl::cpu_isa::avx512_core_bf16: return "AVX-512 BF16";
    case dnnl::cpu_isa::avx512_core_amx: return "AVX-512 AMX";
    default: return "no JIT instruction set (reference code only)";
  }
}

dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

Scratchpad::Scratchpad(const dnnl::memory::desc& desc)
    : buffer(at::empty({std::max<int64_t>(static_cast<int64_t>(desc.get_size()), 1)}, at::kByte)),
      memory(desc, Engine(), buffer.data_ptr()) {}

}  // namespace detr::core::onednn

#endif  // DETR_HAVE_ONEDNN
