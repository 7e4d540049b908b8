// optimization_attention_kernel.h's kernel for AVX2 + FMA, for CPUs without
// AVX-512: the Simd type of optimization_attention_kernel_impl.inc, two
// 8-float registers per 16-float group. Compiled with -mavx2 -mfma, under the
// same rules as optimization_attention_avx512.cc: nothing shared with the
// rest of the program, called only after a CPU check. AVX2 has 16 registers
// and no compress instruction: step tiles are 4 rows x 1 group (8
// accumulators), and packing uses a table of lane permutations.
#include "server/core/kernels/optimization_attention_kernel.h"

#include <immintrin.h>

namespace detr::core {
namespace optimization_kernel {
namespace {

// For each 8-bit lane mask, the lanes it selects, in order (then zeros).
struct CompressTable {
  int32_t lanes[256][8];
};

constexpr CompressTable MakeCompressTable() {
  CompressTable table{};
  for (int mask = 0; mask < 256; ++mask) {
    int packed = 0;
    for (int lane = 0; lane < 8; ++lane) {
      if ((mask >> lane) & 1) table.lanes[mask][packed++] = lane;
    }
  }
  return table;
}

constexpr CompressTable kCompressTable = MakeCompressTable();

struct Simd {
  struct V {
    __m256 lo, hi;
  };
  static constexpr int64_t kTileRows = 4;  // 4 rows x 1 group = 8 registers of accumulators
  static constexpr int64_t kTileGroups = 1;
  static constexpr int kChains = 2;

  static V Zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static V Set1(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
  static V Load(const float* p) { return {_mm256_load_ps(p), _mm256_load_ps(p + 8)}; }
  static V LoadU(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  static V LoadFirst(const float* p, int64_t n) {
    const __m256i count = _mm256_set1_epi32(static_cast<int32_t>(n < 16 ? n : 16));
    const __m256i lo = _mm256_cmpgt_epi32(count, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i hi = _mm256_cmpgt_epi32(count, _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15));
    return {_mm256_maskload_ps(p, lo), _mm256_maskload_ps(p + 8, hi)};
  }
  static void Store(float* p, V v) {
    _mm256_store_ps(p, v.lo);
    _mm256_store_ps(p + 8, v.hi);
  }
  static void StoreU(float* p, V v) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
  }
  static V Fmadd(V a, V b, V c) { return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)}; }
  static V Add(V a, V b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
  static V Sub(V a, V b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
  static V Mul(V a, V b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
  static V Min(V a, V b) { return {_mm256_min_ps(a.lo, b.lo), _mm256_min_ps(a.hi, b.hi)}; }
  static V Max(V a, V b) { return {_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
  static V Abs(V a) {
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    return {_mm256_and_ps(a.lo, magnitude), _mm256_and_ps(a.hi, magnitude)};
  }
  static float Sum(V a) {
    const __m256 eight = _mm256_add_ps(a.lo, a.hi);
    __m128 four = _mm_add_ps(_mm256_castps256_ps128(eight), _mm256_extractf128_ps(eight, 1));
    four = _mm_add_ps(four, _mm_movehl_ps(four, four));
    return _mm_cvtss_f32(_mm_add_ss(four, _mm_shuffle_ps(four, four, 1)));
  }
  static unsigned NonZero(V a) {
    return Mask(_mm256_cmp_ps(a.lo, _mm256_setzero_ps(), _CMP_NEQ_UQ),
                _mm256_cmp_ps(a.hi, _mm256_setzero_ps(), _CMP_NEQ_UQ));
  }
  static unsigned Positive(V a) {
    return Mask(_mm256_cmp_ps(a.lo, _mm256_setzero_ps(), _CMP_GT_OQ),
                _mm256_cmp_ps(a.hi, _mm256_setzero_ps(), _CMP_GT_OQ));
  }
  static V ZeroLane(V a, int lane) {
    const __m256i index = _mm256_set1_epi32(lane);
    const __m256 lo = _mm256_castsi256_ps(_mm256_cmpeq_epi32(index, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
    const __m256 hi = _mm256_castsi256_ps(_mm256_cmpeq_epi32(index, _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15)));
    return {_mm256_andnot_ps(lo, a.lo), _mm256_andnot_ps(hi, a.hi)};
  }
  static int64_t Compress(unsigned mask, V values, int32_t first_column, float* out_values, int32_t* out_columns) {
    const __m256i base = _mm256_set1_epi32(first_column);
    const int64_t low =
        CompressHalf(mask & 0xff, values.lo, _mm256_add_epi32(base, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
                     out_values, out_columns);
    return low + CompressHalf((mask >> 8) & 0xff, values.hi,
                              _mm256_add_epi32(base, _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15)), out_values + low,
                              out_columns + low);
  }

 private:
  static unsigned Mask(__m256 lo, __m256 hi) {
    return static_cast<unsigned>(_mm256_movemask_ps(lo)) | (static_cast<unsigned>(_mm256_movemask_ps(hi)) << 8);
  }
  static int64_t CompressHalf(unsigned mask, __m256 values, __m256i columns, float* out_values, int32_t* out_columns) {
    const __m256i order = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kCompressTable.lanes[mask]));
    _mm256_storeu_ps(out_values, _mm256_permutevar8x32_ps(values, order));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out_columns), _mm256_permutevar8x32_epi32(columns, order));
    return __builtin_popcount(mask);
  }
};

#include "server/core/kernels/optimization_attention_kernel_impl.inc"

}  // namespace

int64_t ScratchFloatsAvx2(int64_t cols, int64_t dh) { return ScratchFloatsImpl(cols, dh); }
void SolveRowsAvx2(const HeadTask& task) { SolveRowsImpl(task); }

}  // namespace optimization_kernel
}  // namespace detr::core
