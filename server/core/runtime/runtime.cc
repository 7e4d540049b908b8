#include "server/core/runtime/runtime.h"

#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <sstream>
#include <thread>

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include "server/core/kernels/optimization_attention_kernel.h"
#ifdef DETR_HAVE_ONEDNN
#include "server/core/kernels/onednn_support.h"
#endif

namespace detr::core {

void ConfigureThreads(int intra_op_threads) {
  const int threads = intra_op_threads > 0 ? intra_op_threads
                                           : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
}

void ReleaseIntraOpThreads() {
  // Looked up at run time so that it reaches whichever OpenMP runtime
  // LibTorch loaded (Debian's libgomp, or the copy the official LibTorch
  // bundles), without compiling this library with OpenMP flags.
  using PauseAll = int (*)(int kind);
  static const auto pause_all = reinterpret_cast<PauseAll>(dlsym(RTLD_DEFAULT, "omp_pause_resource_all"));
  constexpr int kOmpPauseSoft = 1;
  if (pause_all != nullptr) pause_all(kOmpPauseSoft);
}

void KeepFreedBuffersForReuse() {
#if defined(__GLIBC__)
  constexpr int kMiB = 1 << 20;
  mallopt(M_MMAP_THRESHOLD, 64 * kMiB);
  mallopt(M_TRIM_THRESHOLD, 256 * kMiB);
#endif
}

std::string ErrorMessage(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) return torch_error->what_without_backtrace();
  return error.what();
}

std::string RuntimeSummary() {
  std::ostringstream text;
  text << "LibTorch " << TORCH_VERSION << ", " << at::get_num_threads() << " intra-op thread(s), MKL-DNN "
       << (at::hasMKLDNN() ? "on" : "off") << ", oneDNN "
#ifdef DETR_HAVE_ONEDNN
       << onednn::EffectiveIsaName()
#else
       << "not built in"
#endif
       << ", optimization attention kernel " << optimization_kernel::ToString(optimization_kernel::BestIsa());
  return text.str();
}

}  // namespace detr::core
