// Process-wide LibTorch settings for inference.
#pragma once

#include <cstddef>
#include <exception>
#include <string>

namespace detr::core {

/// Sets LibTorch's intra-op threads (0 = every core). Debian's LibTorch
/// starts with one, which leaves the other cores idle.
void ConfigureThreads(int intra_op_threads);

/// Ends the calling thread's team of OpenMP worker threads (they start again
/// with its next parallel region). Why: libgomp lets idle workers spin, which
/// makes the next parallel region start at once, only while it manages no
/// more threads than there are cores; every thread that ever ran a parallel
/// region keeps a team. A server whose main thread loaded the models and whose
/// model workers each keep a team exceeds the cores, so every worker sleeps
/// after each parallel region and is woken again: measured here, a forward
/// pass on a second thread took 131 ms instead of 119 ms, with 300 context
/// switches per pass instead of 6. Call it on a thread that is done with
/// LibTorch for a while. No-op when no OpenMP runtime is loaded.
void ReleaseIntraOpThreads();

/// glibc's malloc: blocks up to 64 MiB come from the heap, not from mmaps of
/// their own, and up to 256 MiB of freed heap is kept. Why: a request's
/// buffers (its encoded bytes and the decoded image: 0.3-1 MB each) are
/// otherwise mapped and page-faulted in afresh for every request,
/// in the kernel, while the model runs on the same cores. Measured here with
/// batching at concurrency 8 on JPEG input: 92-93% of offline batch 8 in
/// three runs with it, 88-90% in two without (docs/benchmarks.md). LibTorch's
/// tensors go through CachingCpuAllocator either way. A no-op without glibc.
void KeepFreedBuffersForReuse();

/// What malloc holds from the system, over all its arenas (glibc's
/// mallinfo2): bytes in use (request buffers, decoded images, model inputs,
/// small tensors) and freed bytes it keeps. Zeros without glibc.
struct MallocUse {
  std::size_t in_use = 0;
  std::size_t free = 0;
};
MallocUse MallocBytes();

/// The OpenBLAS core type worth asking for where `current_core` (what
/// openblas_get_corename() says) is one of OpenBLAS's fallbacks for a CPU
/// model it does not know: "SkylakeX" for AVX-512 (F, BW, DQ, VL), "Haswell"
/// for AVX2 and FMA, capped as the optimization attention kernel is
/// (DETR_KERNEL_MAX_ISA, ONEDNN_MAX_CPU_ISA). Empty: keep what it chose.
std::string BlasCoreTypeToRequest(const std::string& current_core, bool avx512, bool avx2);

/// Call first thing in main(). Debian's LibTorch does its float32 matrix
/// products (linear layers, attention) through the system BLAS. OpenBLAS
/// picks its kernels by CPU model when it is loaded, before main(), and
/// 0.3.21 (Debian 12) falls back to its SSE3 "Prescott" kernels on Intel
/// models newer than it (seen: family 6, model 207, with AVX-512 and AMX).
/// Its documented override, OPENBLAS_CORETYPE, is read only at that load.
/// So where the environment sets none and OpenBLAS runs a fallback core,
/// this re-executes the program (same pid and arguments) with
/// OPENBLAS_CORETYPE from BlasCoreTypeToRequest. Returns when nothing is to
/// be done, or when the re-execution failed (nothing changes then).
void UseFastBlasKernels(char** argv);

/// Whether convolutions in bfloat16 run on the CPU's own bfloat16
/// instructions (AMX or AVX-512 BF16, as oneDNN's effective instruction set
/// says, so ONEDNN_MAX_CPU_ISA caps it). Elsewhere LibTorch's bfloat16
/// convolutions are slower than float32 ones, or fail outright (seen under
/// ONEDNN_MAX_CPU_ISA=AVX2: "could not create a primitive descriptor").
bool CpuRunsBfloat16Natively();

/// The message of an exception for people: LibTorch's c10::Error without
/// its C++ backtrace, anything else as what() says.
std::string ErrorMessage(const std::exception& error);

/// One line for logs: LibTorch version, threads, the BLAS/oneDNN build, the
/// OpenBLAS kernels in use, and which optimization attention kernel this CPU
/// runs.
std::string RuntimeSummary();

}  // namespace detr::core
