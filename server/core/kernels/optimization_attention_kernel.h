// A vectorised kernel for optimization attention's inference path: a whole
// head's solve (dictionary preparation, G = D^T D + rho I and E = G^-1 D^T,
// K ADMM steps, normaliser, weights times values) for a range of query rows,
// with its state in one core's cache.
//
// Plain pointers and no LibTorch: optimization_attention_avx512.cc and
// optimization_attention_avx2.cc, which implement it (one body,
// optimization_attention_kernel_impl.inc), are compiled for their
// instruction sets and must share no inline code with the rest of the
// program (an AVX-512 copy of a shared inline function could be the one the
// linker keeps). optimization_attention_inference.cc decides whether the CPU
// and the problem allow it, and calls it.
#pragma once

#include <cstdint>

namespace detr::core {
namespace optimization_kernel {

/// Query rows solved together: the state of one block is kBlockRows x m
/// floats (Z; the dual U is folded away, see optimization_attention_kernel_impl.inc).
constexpr int64_t kBlockRows = 8;

/// One head of one image, query rows [row_begin, row_end). Every row pointer
/// has unit stride along the head width dh.
struct HeadTask {
  const float* queries = nullptr;  // row i at queries + i * query_stride
  int64_t query_stride = 0;
  const float* dictionary = nullptr;  // row j at dictionary + j * dictionary_stride, j < m
  int64_t dictionary_stride = 0;
  const float* values = nullptr;  // row j at values + j * value_stride, j < m
  int64_t value_stride = 0;
  const bool* key_padding = nullptr;         // m entries, true = padding; null = none
  const float* random_directions = nullptr;  // r x dh, N(0, 1) draws; null when r = 0
  float* out = nullptr;                      // row i at out + i * out_stride
  int64_t out_stride = 0;
  int64_t m = 0, r = 0, dh = 0;  // keys, random tokens, head width
  int64_t row_begin = 0, row_end = 0;
  bool exclude_self = false;  // query i may not use dictionary row i
  bool normalize_inputs = true;
  bool relu = true;  // relu_power (true) or abs_power normaliser
  int iterations = 5;
  float threshold = 0.05f;  // lambda / rho
  double rho = 1.0;
  float power = 5.0f;
  float* scratch = nullptr;  // ScratchFloats(m + r, dh) floats, 64-byte aligned
};

/// The instruction sets the kernel is built for, best last.
enum class Isa { kNone, kAvx2, kAvx512 };

/// The environment variable that caps the kernel's instruction set, as
/// ONEDNN_MAX_CPU_ISA caps oneDNN's: AVX512 (no cap), AVX2, or NONE (the ATen
/// path). Why: to test and measure every path on one machine.
constexpr const char* kIsaCapVariable = "DETR_KERNEL_MAX_ISA";
/// The cap a value of that variable names (null or empty: no cap). Throws
/// std::invalid_argument for anything else.
Isa IsaCap(const char* value);

/// The cap that follows oneDNN's, for a value of ONEDNN_MAX_CPU_ISA: AVX2*
/// caps the kernel at AVX2, SSE41 and AVX at the ATen path, anything else
/// (unset, ALL, AVX512_*) not at all.
Isa IsaCapOfOneDnn(const char* value);

/// The best instruction set this CPU and build run the kernel with, under
/// the cap of DETR_KERNEL_MAX_ISA, or where that is unset, of
/// ONEDNN_MAX_CPU_ISA (so that one variable makes the process behave as on a
/// CPU without AVX-512). Throws std::invalid_argument if DETR_KERNEL_MAX_ISA
/// holds an unknown value.
Isa BestIsa();
/// "AVX-512", "AVX2" or "none (ATen path)", for logs and errors.
const char* ToString(Isa isa);
/// Whether the kernel runs here, with `isa`, for head width dh (16, 32, 48
/// or 64).
bool Available(Isa isa, int64_t dh);

/// Floats of scratch a task needs for a dictionary of `cols` rows.
int64_t ScratchFloats(Isa isa, int64_t cols, int64_t dh);
/// Solves the task. Call only where Available(isa, task.dh).
void SolveRows(Isa isa, const HeadTask& task);

/// The kernels themselves, each compiled for its instruction set.
int64_t ScratchFloatsAvx512(int64_t cols, int64_t dh);
void SolveRowsAvx512(const HeadTask& task);
int64_t ScratchFloatsAvx2(int64_t cols, int64_t dh);
void SolveRowsAvx2(const HeadTask& task);

}  // namespace optimization_kernel
}  // namespace detr::core
