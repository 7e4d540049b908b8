#include "server/core/runtime/runtime.h"

#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <sstream>
#include <string_view>
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
  const int threads =
      intra_op_threads > 0 ? intra_op_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
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

MallocUse MallocBytes() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 info = mallinfo2();
  return {info.uordblks + info.hblkhd, info.fordblks};
#else
  return {};
#endif
}

namespace {

// openblas_get_corename() of whichever OpenBLAS the process loaded (empty
// where the BLAS is another one), looked up at run time: LibTorch links the
// system's libblas.so.3, which Debian's alternatives may point elsewhere.
std::string OpenBlasCoreName() {
  using CoreName = char* (*)();
  const auto core_name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* name = core_name != nullptr ? core_name() : nullptr;
  return name != nullptr ? name : "";
}

bool CpuHasSkylakeXFeatures() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

}  // namespace

std::string BlasCoreTypeToRequest(const std::string& current_core, bool avx512, bool avx2) {
  // Cores without AVX2: what OpenBLAS falls back to for models it does not
  // know. Any other choice (Haswell on a Zen 4, say) is its own, and kept.
  static constexpr std::array<std::string_view, 11> kFallbacks = {"Prescott",   "Core2",       "Penryn", "Dunnington",
                                                                  "Nehalem",    "Sandybridge", "Atom",   "Katmai",
                                                                  "Coppermine", "Northwood",   "Banias"};
  if (std::find(kFallbacks.begin(), kFallbacks.end(), current_core) == kFallbacks.end()) return "";
  if (avx512) return "SkylakeX";
  if (avx2) return "Haswell";
  return "";
}

void UseFastBlasKernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;  // chosen already, by a person or by us
  std::string wanted;
  try {
    const auto isa = optimization_kernel::BestIsa();  // the CPU's, under the project's caps
    wanted =
        BlasCoreTypeToRequest(OpenBlasCoreName(), isa == optimization_kernel::Isa::kAvx512 && CpuHasSkylakeXFeatures(),
                              isa >= optimization_kernel::Isa::kAvx2);
  } catch (const std::exception&) {
    return;  // a bad DETR_KERNEL_MAX_ISA: RuntimeSummary() reports it
  }
  if (wanted.empty()) return;
  setenv("OPENBLAS_CORETYPE", wanted.c_str(), /*overwrite=*/1);
  execv("/proc/self/exe", argv);
  unsetenv("OPENBLAS_CORETYPE");  // execv failed: carry on as loaded
}

bool CpuRunsBfloat16Natively() {
#ifdef DETR_HAVE_ONEDNN
  const auto isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
#else
  return false;
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
  if (const auto blas = OpenBlasCoreName(); !blas.empty()) {
    const char* requested = std::getenv("OPENBLAS_CORETYPE");
    text << ", OpenBLAS " << blas << (requested != nullptr ? " (OPENBLAS_CORETYPE)" : "");
  }
  return text.str();
}

}  // namespace detr::core
