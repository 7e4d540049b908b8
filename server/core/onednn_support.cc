#ifdef DETR_HAVE_ONEDNN

#include "server/core/onednn_support.h"

#include <algorithm>

#include <ATen/ATen.h>

namespace detr::onednn {

const dnnl::engine& Engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);  // immutable once built; thread-safe init
  return engine;
}

dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

Scratchpad::Scratchpad(const dnnl::memory::desc& desc)
    : buffer(at::empty({std::max<int64_t>(static_cast<int64_t>(desc.get_size()), 1)}, at::kByte)),
      memory(desc, Engine(), buffer.data_ptr()) {}

}  // namespace detr::onednn

#endif  // DETR_HAVE_ONEDNN
