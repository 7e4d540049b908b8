// What the oneDNN-backed pieces of the model core share (onednn_resnet.cc,
// onednn_matmul.cc). Included only where DETR_HAVE_ONEDNN is defined.
#pragma once

#include <string>

#include <ATen/Tensor.h>
#include <oneapi/dnnl/dnnl.hpp>

namespace detr::core::onednn {

/// The CPU engine every primitive of the process runs on (built once).
const dnnl::engine& Engine();

/// The instruction set oneDNN's JIT code runs with here ("AVX-512", "AVX2",
/// ...): the CPU's best, capped by ONEDNN_MAX_CPU_ISA.
std::string EffectiveIsaName();

/// Primitive attributes with caller-provided scratchpads. Why: with oneDNN's
/// own (library) scratchpad, two threads running the same primitive at once
/// crashed in its JIT code (a server with several workers).
dnnl::primitive_attr UserScratchpad();

/// A scratchpad of `desc`'s size from LibTorch's allocator (so the caching
/// allocator reuses it and memory scopes count it), alive as long as this is.
struct Scratchpad {
  explicit Scratchpad(const dnnl::memory::desc& desc);
  at::Tensor buffer;
  dnnl::memory memory;
};

}  // namespace detr::core::onednn
