// optimization_attention_kernel.h's kernel for AVX-512F. This file is
// compiled with -mavx512f -mfma, so it includes nothing with inline
// functions the rest of the program also compiles (only intrinsics, which
// are never emitted out of line) and keeps all its code in an anonymous
// namespace; the entry point is called only after a CPU check.
//
// Per head and block of 8 query rows, with E = G^-1 D^T (dh x m) and
// M = E D = I - rho G^-1 (dh x dh), step k of the spec's ADMM reads
//   s_k = Z_{k-1} + R_k E                       (dense: the threshold needs all of s)
//   Z_k = S_t(s_k), 0 at the query's own key
//   R_{k+1} = Q - 2 Z_k D + Z_{k-1} D + R_k M    (R_0 = Q, Z_{-1} = 0)
// Derivation: with W = Z - U and the dual U = s - Z, W_k = 2 Z_k - s_k; the
// Woodbury form A = W + (Q - W D) E gives s = A + U = Z + R E, and
// s_k D = Z_{k-1} D + R_k E D. So the residual's product with the dictionary
// is one with Z, which the soft threshold makes sparse (on random unit
// inputs 0-7% non-zero after 5 steps at lambda 0.05): each row gathers its
// non-zero coefficients (AVX-512 compress, no branch per coefficient) and
// combines only those dictionary rows. A step then costs one dense product
// (R E, 2 m dh per row) and the sparse ones, where the plain form costs two
// dense products; the output P V (P = relu(Z)^p) is sparse the same way. Padded keys need no
// mask: their dictionary rows, and so their columns of E, are zero, so their
// s and Z stay exactly 0.
#include "server/core/optimization_attention_kernel.h"

// GCC 12's AVX-512 headers trip its own uninitialised-use warning on
// _mm512_undefined_ps (GCC bug 105593); the intrinsics are correct.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

namespace detr {
namespace optimization_kernel {
namespace {

constexpr int64_t kLanes = 16;
constexpr int64_t kTileVectors = 2;  // a step tile: 8 rows x 2 vectors = 16 accumulators (3 was no faster)
constexpr float kNormEps = 1e-12f;   // as UnitRows in optimization_attention.cc
constexpr float kWeightEps = 1e-6f;  // the spec's epsilon of the power normaliser

int64_t RoundUp(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }
int64_t Min(int64_t a, int64_t b) { return a < b ? a : b; }

// The task's scratch, carved into its buffers. Every size is a multiple of 16
// floats, so every buffer starts 64-byte aligned.
struct Buffers {
  int64_t cols, padded, dh;
  float* dictionary;      // padded x dh: the prepared dictionary, zero rows past cols
  float* solve_t;         // dh x padded: E = G^-1 D^T
  float* z;               // kBlockRows x padded: the block's coefficients
  float* q;               // kBlockRows x dh: the block's prepared query rows
  float* residual;        // kBlockRows x dh: R of odd steps
  float* next_residual;   // kBlockRows x dh: R of even steps > 0
  float* zd;              // kBlockRows x dh: Z_{k-1} D
  float* mix;             // dh x dh: M = I - rho G^-1
  float* list_values;     // padded + 16: one row's selected coefficients (Gather)
  int32_t* list_columns;  // padded + 16: their columns
  int64_t words;          // 64-bit words of one row's bitmap below
  uint64_t* nonzero;      // kBlockRows x words: bit i set when vector i of the row's Z holds a non-zero
  float* tile;            // dh x 16: a transposed block of dictionary rows
  float* inverse;         // dh x dh: G^-1
  double* gram;           // dh x dh: G, then its Cholesky factor
  double* inverse64;      // dh x dh
  int64_t floats;         // all of the above
};

// scratch == nullptr: only counts (Buffers::floats).
Buffers Carve(float* scratch, int64_t cols, int64_t dh) {
  Buffers b{};
  b.cols = cols;
  b.padded = RoundUp(cols, kLanes);
  b.dh = dh;
  auto take = [&b, scratch](int64_t floats) {
    float* begin = scratch != nullptr ? scratch + b.floats : nullptr;
    b.floats += floats;
    return begin;
  };
  b.dictionary = take(b.padded * dh);
  b.solve_t = take(dh * b.padded);
  b.z = take(kBlockRows * b.padded);
  b.q = take(kBlockRows * dh);
  b.residual = take(kBlockRows * dh);
  b.next_residual = take(kBlockRows * dh);
  b.zd = take(kBlockRows * dh);
  b.mix = take(dh * dh);
  b.list_values = take(b.padded + kLanes);
  b.list_columns = reinterpret_cast<int32_t*>(take(b.padded + kLanes));
  b.words = (b.padded / kLanes + 63) / 64;
  b.nonzero = reinterpret_cast<uint64_t*>(take(RoundUp(2 * kBlockRows * b.words, kLanes)));
  b.tile = take(dh * kLanes);
  b.inverse = take(dh * dh);
  b.gram = reinterpret_cast<double*>(take(2 * dh * dh));
  b.inverse64 = reinterpret_cast<double*>(take(2 * dh * dh));
  return b;
}

float SumOfSquares(const float* row, int64_t count) {
  float sum = 0;
  for (int64_t k = 0; k < count; ++k) sum += row[k] * row[k];
  return sum;
}

// dst = src / max(|src|, eps) (or a copy), as PrepareQueries/PrepareDictionary.
void PrepareRow(const float* src, float* dst, int64_t dh, bool normalize) {
  float norm = normalize ? __builtin_sqrtf(SumOfSquares(src, dh)) : 1.0f;
  if (norm < kNormEps) norm = kNormEps;
  for (int64_t k = 0; k < dh; ++k) dst[k] = normalize ? src[k] / norm : src[k];
}

// Rows normalised, padded rows zero, random rows (scaled to the dictionary's
// RMS over its real rows) appended, zero rows up to the padded size.
void PrepareDictionary(const HeadTask& task, const Buffers& b) {
  const int64_t dh = task.dh;
  double sum_squares = 0;
  int64_t real_rows = 0;
  for (int64_t j = 0; j < task.m; ++j) {
    float* row = b.dictionary + j * dh;
    if (task.key_padding != nullptr && task.key_padding[j]) {
      __builtin_memset(row, 0, sizeof(float) * dh);
      continue;
    }
    PrepareRow(task.dictionary + j * task.dictionary_stride, row, dh, task.normalize_inputs);
    sum_squares += SumOfSquares(row, dh);
    ++real_rows;
  }
  if (task.r > 0) {
    const int64_t rows = task.key_padding != nullptr ? (real_rows > 0 ? real_rows : 1) : task.m;
    const float sigma = __builtin_sqrtf(static_cast<float>(sum_squares / static_cast<double>(rows * dh)));
    for (int64_t i = 0; i < task.r; ++i) {
      for (int64_t k = 0; k < dh; ++k) b.dictionary[(task.m + i) * dh + k] = task.random_directions[i * dh + k] * sigma;
    }
  }
  __builtin_memset(b.dictionary + b.cols * dh, 0, sizeof(float) * (b.padded - b.cols) * dh);
}

// G = D^T D + rho I in double (dh x dh).
void FormGram(const Buffers& b, double rho) {
  const int64_t dh = b.dh;
  double* g = b.gram;
  for (int64_t i = 0; i < dh * dh; ++i) g[i] = 0;
  for (int64_t j = 0; j < b.cols; ++j) {
    const float* d = b.dictionary + j * dh;
    for (int64_t k = 0; k < dh; ++k) {
      const double dk = d[k];
      for (int64_t l = 0; l < dh; ++l) g[k * dh + l] += dk * d[l];
    }
  }
  for (int64_t k = 0; k < dh; ++k) g[k * dh + k] += rho;
}

// G = L L^T in place, L in the lower triangle. G >= rho I > 0 (the config
// requires rho > 0), so every pivot is positive.
void CholeskyInPlace(double* g, int64_t dh) {
  for (int64_t col = 0; col < dh; ++col) {
    double diagonal = g[col * dh + col];
    for (int64_t k = 0; k < col; ++k) diagonal -= g[col * dh + k] * g[col * dh + k];
    g[col * dh + col] = __builtin_sqrt(diagonal);
    for (int64_t row = col + 1; row < dh; ++row) {
      double value = g[row * dh + col];
      for (int64_t k = 0; k < col; ++k) value -= g[row * dh + k] * g[col * dh + k];
      g[row * dh + col] = value / g[col * dh + col];
    }
  }
}

// x = (L L^T)^-1, column by column: L y = e_c, then L^T x_c = y.
void InvertFromCholesky(const double* l, int64_t dh, double* x) {
  for (int64_t c = 0; c < dh; ++c) {
    for (int64_t row = 0; row < dh; ++row) {
      double value = row == c ? 1.0 : 0.0;
      for (int64_t k = 0; k < row; ++k) value -= l[row * dh + k] * x[k * dh + c];
      x[row * dh + c] = value / l[row * dh + row];
    }
    for (int64_t row = dh - 1; row >= 0; --row) {
      double value = x[row * dh + c];
      for (int64_t k = row + 1; k < dh; ++k) value -= l[k * dh + row] * x[k * dh + c];
      x[row * dh + c] = value / l[row * dh + row];
    }
  }
}

// G^-1 and M = I - rho G^-1 in float. G is only dh x dh, so its exact
// inverse (in double) is cheap and turns E = G^-1 D^T into one product.
void InvertGram(const Buffers& b, double rho) {
  const int64_t dh = b.dh;
  FormGram(b, rho);
  CholeskyInPlace(b.gram, dh);
  InvertFromCholesky(b.gram, dh, b.inverse64);
  for (int64_t i = 0; i < dh * dh; ++i) {
    b.inverse[i] = static_cast<float>(b.inverse64[i]);
    b.mix[i] = static_cast<float>((i % (dh + 1) == 0 ? 1.0 : 0.0) - rho * b.inverse64[i]);
  }
}

// E = G^-1 D^T (dh x padded), 16 dictionary rows at a time.
void SolveTranspose(const Buffers& b) {
  const int64_t dh = b.dh;
  for (int64_t j0 = 0; j0 < b.padded; j0 += kLanes) {
    for (int64_t i = 0; i < kLanes; ++i) {
      for (int64_t l = 0; l < dh; ++l) b.tile[l * kLanes + i] = b.dictionary[(j0 + i) * dh + l];
    }
    for (int64_t k = 0; k < dh; ++k) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t l = 0; l < dh; ++l) {
        acc = _mm512_fmadd_ps(_mm512_set1_ps(b.inverse[k * dh + l]), _mm512_load_ps(b.tile + l * kLanes), acc);
      }
      _mm512_store_ps(b.solve_t + k * b.padded + j0, acc);
    }
  }
}

// One ADMM step's dense part for the block's columns [j0, j0 + 16 kVectors):
// s = (kFirst ? 0 : Z) + R E, then Z = S_t(s), 0 at self[r] (the column row r
// may not use, or -1).
template <bool kFirst, int kVectors>
void StepColumns(const float* residual, const Buffers& b, const int64_t* self, __m512 threshold, int64_t j0) {
  const int64_t padded = b.padded, dh = b.dh;
  __m512 acc[kBlockRows][kVectors];
#pragma GCC unroll 8
  for (int64_t r = 0; r < kBlockRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) {
      acc[r][v] = kFirst ? _mm512_setzero_ps() : _mm512_load_ps(b.z + r * padded + j0 + v * kLanes);
    }
  }
  for (int64_t k = 0; k < dh; ++k) {
    __m512 e[kVectors];
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) e[v] = _mm512_load_ps(b.solve_t + k * padded + j0 + v * kLanes);
#pragma GCC unroll 8
    for (int64_t r = 0; r < kBlockRows; ++r) {
      const __m512 c = _mm512_set1_ps(residual[r * dh + k]);
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm512_fmadd_ps(c, e[v], acc[r][v]);
    }
  }
  const __m512 negative_threshold = _mm512_sub_ps(_mm512_setzero_ps(), threshold);
  const int64_t vector = j0 / kLanes;  // a tile's vectors share one bitmap word (kTileVectors divides 64)
#pragma GCC unroll 8
  for (int64_t r = 0; r < kBlockRows; ++r) {
    uint64_t nonzero = 0;
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) {
      const __m512 s = acc[r][v];
      const __m512 clamped = _mm512_min_ps(_mm512_max_ps(s, negative_threshold), threshold);
      __m512 z = _mm512_sub_ps(s, clamped);  // S_t(s) = s - clamp(s, -t, t)
      const uint64_t offset = static_cast<uint64_t>(self[r] - (j0 + v * kLanes));
      if (offset < static_cast<uint64_t>(kLanes)) {
        z = _mm512_mask_mov_ps(z, static_cast<__mmask16>(1u << offset), _mm512_setzero_ps());
      }
      _mm512_store_ps(b.z + r * padded + j0 + v * kLanes, z);
      nonzero |= static_cast<uint64_t>(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_NEQ_UQ) != 0) << v;
    }
    b.nonzero[r * b.words + vector / 64] |= nonzero << (vector % 64);
  }
}

template <bool kFirst>
void DenseStep(const float* residual, const Buffers& b, const int64_t* self, float threshold) {
  const __m512 t = _mm512_set1_ps(threshold);
  __builtin_memset(b.nonzero, 0, sizeof(uint64_t) * kBlockRows * b.words);
  int64_t j0 = 0;
  for (; j0 + kTileVectors * kLanes <= b.padded; j0 += kTileVectors * kLanes) {
    StepColumns<kFirst, kTileVectors>(residual, b, self, t, j0);
  }
  for (; j0 < b.padded; j0 += kLanes) StepColumns<kFirst, 1>(residual, b, self, t, j0);
}

// Which coefficients of a row count: non-zero ones, or (relu) positive ones.
__mmask16 Selected(__m512 z, bool positive_only) {
  return positive_only ? _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ)
                       : _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_NEQ_UQ);
}

// The selected coefficients of row r's first `count`, packed into
// b.list_values and their columns (ascending) into b.list_columns, without a
// branch per coefficient. Only the vectors the last step marked as holding a
// non-zero are read: on sparse rows most hold none. Returns how many.
int64_t Gather(const Buffers& b, int64_t r, int64_t count, bool positive_only) {
  const float* z = b.z + r * b.padded;
  const uint64_t* marked = b.nonzero + r * b.words;
  int64_t selected = 0;
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t word = 0; word < b.words; ++word) {
    for (uint64_t bits = marked[word]; bits != 0; bits &= bits - 1) {
      const int64_t j = (word * 64 + __builtin_ctzll(bits)) * kLanes;
      if (j >= count) return selected;
      const int64_t left = count - j;
      const __mmask16 valid = left >= kLanes ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
      const __m512 values = _mm512_maskz_loadu_ps(valid, z + j);
      const __mmask16 mask = Selected(values, positive_only) & valid;
      const __m512i columns = _mm512_add_epi32(lanes, _mm512_set1_epi32(static_cast<int32_t>(j)));
      // Full-width stores of the packed registers: the lists have a vector of slack.
      _mm512_storeu_ps(b.list_values + selected, _mm512_maskz_compress_ps(mask, values));
      _mm512_storeu_si512(b.list_columns + selected, _mm512_maskz_compress_epi32(mask, columns));
      selected += __builtin_popcount(mask);
    }
  }
  return selected;
}

// sum_i coefficient[i] * matrix row column[i], over four independent
// accumulators so that the FMA latency does not serialise the sum.
template <int kV>
void CombineRows(const float* coefficients, const int32_t* columns, int64_t count, const float* matrix, int64_t stride,
                 __m512 result[kV]) {
  __m512 acc[4][kV];
  for (int u = 0; u < 4; ++u) {
    for (int v = 0; v < kV; ++v) acc[u][v] = _mm512_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 4 <= count; i += 4) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) {
      const __m512 c = _mm512_set1_ps(coefficients[i + u]);
      const float* row = matrix + static_cast<int64_t>(columns[i + u]) * stride;
      for (int v = 0; v < kV; ++v) acc[u][v] = _mm512_fmadd_ps(c, _mm512_loadu_ps(row + v * kLanes), acc[u][v]);
    }
  }
  for (; i < count; ++i) {
    const __m512 c = _mm512_set1_ps(coefficients[i]);
    const float* row = matrix + static_cast<int64_t>(columns[i]) * stride;
    for (int v = 0; v < kV; ++v) acc[0][v] = _mm512_fmadd_ps(c, _mm512_loadu_ps(row + v * kLanes), acc[0][v]);
  }
  for (int v = 0; v < kV; ++v) {
    result[v] = _mm512_add_ps(_mm512_add_ps(acc[0][v], acc[1][v]), _mm512_add_ps(acc[2][v], acc[3][v]));
  }
}

// next = Q + R M - 2 Z_k D + Z_{k-1} D for row r, and zd <- Z_k D.
template <int kV>
void NextResidual(const Buffers& b, int64_t r, const float* residual, float* next) {
  const int64_t dh = kV * kLanes;
  const int64_t count = Gather(b, r, b.cols, false);
  __m512 zd[kV];
  CombineRows<kV>(b.list_values, b.list_columns, count, b.dictionary, dh, zd);
  __m512 value[2][kV];
  for (int v = 0; v < kV; ++v) {
    const __m512 previous = _mm512_load_ps(b.zd + r * dh + v * kLanes);
    value[0][v] = _mm512_add_ps(_mm512_load_ps(b.q + r * dh + v * kLanes),
                                _mm512_fmadd_ps(_mm512_set1_ps(-2.0f), zd[v], previous));
    value[1][v] = _mm512_setzero_ps();
    _mm512_store_ps(b.zd + r * dh + v * kLanes, zd[v]);
  }
  for (int64_t l = 0; l < dh; l += 2) {  // R M, two chains
#pragma GCC unroll 2
    for (int u = 0; u < 2; ++u) {
      const __m512 coefficient = _mm512_set1_ps(residual[r * dh + l + u]);
      for (int v = 0; v < kV; ++v) {
        value[u][v] = _mm512_fmadd_ps(coefficient, _mm512_load_ps(b.mix + (l + u) * dh + v * kLanes), value[u][v]);
      }
    }
  }
  for (int v = 0; v < kV; ++v) _mm512_store_ps(next + r * dh + v * kLanes, _mm512_add_ps(value[0][v], value[1][v]));
}

__m512 Power(__m512 base, float power, int integer_power) {
  if (integer_power == 5) {
    const __m512 square = _mm512_mul_ps(base, base);
    return _mm512_mul_ps(_mm512_mul_ps(square, square), base);
  }
  if (integer_power > 0) {
    __m512 value = base;
    for (int i = 1; i < integer_power; ++i) value = _mm512_mul_ps(value, base);
    return value;
  }
  alignas(64) float lanes[kLanes];
  _mm512_store_ps(lanes, base);
  for (int64_t i = 0; i < kLanes; ++i) lanes[i] = __builtin_powf(lanes[i], power);
  return _mm512_load_ps(lanes);
}

// One output row: sum_j w_j V_j / (sum_j w_j + eps), w_j = relu(z_j)^p or
// |z_j|^p. Random tokens (columns >= m) carry zero values, but their weights
// count in the sum; the gathered columns ascend, so the real keys come first.
template <int kV>
void OutputRow(const HeadTask& task, const Buffers& b, int64_t r, float* out) {
  const int64_t count = Gather(b, r, b.cols, task.relu);
  const float power = task.power;
  const int integer_power =
      power >= 1.0f && power <= 16.0f && static_cast<float>(static_cast<int>(power)) == power ? static_cast<int>(power) : 0;
  __m512 sum = _mm512_setzero_ps();
  int64_t real = 0;
  for (int64_t i = 0; i < count; i += kLanes) {
    const int64_t left = count - i;
    const __mmask16 valid = left >= kLanes ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
    const __m512 z = _mm512_maskz_loadu_ps(valid, b.list_values + i);
    const __m512 weight = Power(_mm512_abs_ps(z), power, integer_power);  // relu: only z > 0 were gathered
    _mm512_storeu_ps(b.list_values + i, weight);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(valid, weight));
    const __m512i columns = _mm512_loadu_si512(b.list_columns + i);
    real += __builtin_popcount(_mm512_mask_cmplt_epi32_mask(valid, columns, _mm512_set1_epi32(static_cast<int32_t>(task.m))));
  }
  __m512 acc[kV];
  CombineRows<kV>(b.list_values, b.list_columns, real, task.values, task.value_stride, acc);
  const __m512 scale = _mm512_set1_ps(1.0f / (_mm512_reduce_add_ps(sum) + kWeightEps));
  for (int v = 0; v < kV; ++v) _mm512_storeu_ps(out + v * kLanes, _mm512_mul_ps(acc[v], scale));
}

template <int kV>
void SolveBlock(const HeadTask& task, const Buffers& b, int64_t begin, int64_t rows) {
  const int64_t dh = kV * kLanes;
  int64_t self[kBlockRows];
  for (int64_t r = 0; r < kBlockRows; ++r) {
    float* q = b.q + r * dh;
    if (r < rows) {
      PrepareRow(task.queries + (begin + r) * task.query_stride, q, dh, task.normalize_inputs);
    } else {
      __builtin_memset(q, 0, sizeof(float) * dh);  // zero rows stay zero through every step
    }
    self[r] = task.exclude_self && r < rows ? begin + r : -1;
  }
  __builtin_memset(b.zd, 0, sizeof(float) * kBlockRows * dh);  // Z_{-1} D = 0
  const float* residual = b.q;  // R_0 = Q
  for (int step = 0; step < task.iterations; ++step) {
    if (step == 0) {
      DenseStep<true>(residual, b, self, task.threshold);
    } else {
      DenseStep<false>(residual, b, self, task.threshold);
    }
    if (step + 1 == task.iterations) break;
    float* next = residual == b.residual ? b.next_residual : b.residual;
    for (int64_t r = 0; r < kBlockRows; ++r) NextResidual<kV>(b, r, residual, next);
    residual = next;
  }
  for (int64_t r = 0; r < rows; ++r) OutputRow<kV>(task, b, r, task.out + (begin + r) * task.out_stride);
}

template <int kV>
void SolveRows(const HeadTask& task, const Buffers& b) {
  for (int64_t begin = task.row_begin; begin < task.row_end; begin += kBlockRows) {
    SolveBlock<kV>(task, b, begin, Min(kBlockRows, task.row_end - begin));
  }
}

}  // namespace

int64_t ScratchFloats(int64_t cols, int64_t dh) { return Carve(nullptr, cols, dh).floats; }

void SolveRowsAvx512(const HeadTask& task) {
  const Buffers b = Carve(task.scratch, task.m + task.r, task.dh);
  PrepareDictionary(task, b);
  InvertGram(b, task.rho);
  SolveTranspose(b);
  switch (task.dh / kLanes) {
    case 1: return SolveRows<1>(task, b);
    case 2: return SolveRows<2>(task, b);
    case 3: return SolveRows<3>(task, b);
    case 4: return SolveRows<4>(task, b);
    default: __builtin_trap();  // Available() admits 16, 32, 48 and 64
  }
}

}  // namespace optimization_kernel
}  // namespace detr
