// optimization_attention_kernel.h's kernel for AVX-512F: the Simd type of
// optimization_attention_kernel_impl.inc, one register per 16-float group.
// This file is compiled with -mavx512f -mfma, so it includes nothing with
// inline functions the rest of the program also compiles (only intrinsics,
// which are never emitted out of line) and keeps all its code in an
// anonymous namespace; it is called only after a CPU check.
#include "server/core/kernels/optimization_attention_kernel.h"

// GCC 12's AVX-512 headers trip its own uninitialised-use warning on
// _mm512_undefined_ps (GCC bug 105593); the intrinsics are correct.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

namespace detr::core {
namespace optimization_kernel {
namespace {

struct Simd {
  using V = __m512;
  static constexpr int64_t kTileRows = 8;  // 8 rows x 2 groups = 16 accumulators (3 groups was no faster)
  static constexpr int64_t kTileGroups = 2;
  static constexpr int kChains = 4;

  static V Zero() { return _mm512_setzero_ps(); }
  static V Set1(float x) { return _mm512_set1_ps(x); }
  static V Load(const float* p) { return _mm512_load_ps(p); }
  static V LoadU(const float* p) { return _mm512_loadu_ps(p); }
  static V LoadFirst(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(FirstLanes(n), p); }
  static void Store(float* p, V v) { _mm512_store_ps(p, v); }
  static void StoreU(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V Fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V Add(V a, V b) { return _mm512_add_ps(a, b); }
  static V Sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V Mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V Min(V a, V b) { return _mm512_min_ps(a, b); }
  static V Max(V a, V b) { return _mm512_max_ps(a, b); }
  static V Abs(V a) { return _mm512_abs_ps(a); }
  static float Sum(V a) { return _mm512_reduce_add_ps(a); }
  static unsigned NonZero(V a) { return _mm512_cmp_ps_mask(a, Zero(), _CMP_NEQ_UQ); }
  static unsigned Positive(V a) { return _mm512_cmp_ps_mask(a, Zero(), _CMP_GT_OQ); }
  static V ZeroLane(V a, int lane) { return _mm512_mask_mov_ps(a, static_cast<__mmask16>(1u << lane), Zero()); }
  static int64_t Compress(unsigned mask, V values, int32_t first_column, float* out_values, int32_t* out_columns) {
    const __m512i columns = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(first_column));
    const auto lanes = static_cast<__mmask16>(mask);
    _mm512_storeu_ps(out_values, _mm512_maskz_compress_ps(lanes, values));
    _mm512_storeu_si512(out_columns, _mm512_maskz_compress_epi32(lanes, columns));
    return __builtin_popcount(mask);
  }

 private:
  static __mmask16 FirstLanes(int64_t n) {
    return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n > 0 ? n : 0)) - 1);
  }
};

#include "server/core/kernels/optimization_attention_kernel_impl.inc"

}  // namespace

int64_t ScratchFloatsAvx512(int64_t cols, int64_t dh) { return ScratchFloatsImpl(cols, dh); }
void SolveRowsAvx512(const HeadTask& task) { SolveRowsImpl(task); }

}  // namespace optimization_kernel
}  // namespace detr::core
