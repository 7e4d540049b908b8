// optimization_attention_kernel.h's kernel for AVX-512F. This file is
// compiled with -mavx512f -mfma, so it includes nothing with inline
// functions the rest of the program also compiles (only intrinsics, which
// are never emitted out of line) and keeps all its code in an anonymous
// namespace; the entry point is called only after a CPU check.
//
// Per head and block of 8 query rows, with E = G^-1 D^T and W = Z - U:
//   step 0:  s = Q E
//   later:   R = Q - W D;  s = Z + R E
//   each:    Z = S_t(s) (0 at the query's own key);  W = 2 Z - s
// which is the spec's ADMM step with the dual U = s - Z folded into W: from
// A = W + R E (Woodbury) and s = A + U follows s = Z + R E. Padded keys need no
// mask: their dictionary rows, and so their columns of E, are zero, so their
// s, Z and W stay exactly 0.
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
constexpr float kNormEps = 1e-12f;   // as UnitRows in optimization_attention.cc
constexpr float kWeightEps = 1e-6f;  // the spec's epsilon of the power normaliser

int64_t RoundUp(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }
int64_t Min(int64_t a, int64_t b) { return a < b ? a : b; }

// The task's scratch, carved into its buffers. Every size is a multiple of 16
// floats, so every buffer starts 64-byte aligned.
struct Buffers {
  int64_t cols, padded, dh;
  float* dictionary;  // padded x dh: the prepared dictionary, zero rows past cols
  float* solve_t;     // dh x padded: E = G^-1 D^T
  float* z;           // kBlockRows x padded
  float* w;           // kBlockRows x padded
  float* q;           // kBlockRows x dh: the block's prepared query rows
  float* residual;    // kBlockRows x dh
  float* tile;        // dh x 16: a transposed block of dictionary rows
  float* inverse;     // dh x dh: G^-1
  double* gram;       // dh x dh: G, then its Cholesky factor
  double* inverse64;  // dh x dh
};

Buffers Carve(float* scratch, int64_t cols, int64_t dh) {
  Buffers b{};
  b.cols = cols;
  b.padded = RoundUp(cols, kLanes);
  b.dh = dh;
  float* next = scratch;
  auto take = [&next](int64_t floats) {
    float* begin = next;
    next += floats;
    return begin;
  };
  b.dictionary = take(b.padded * dh);
  b.solve_t = take(dh * b.padded);
  b.z = take(kBlockRows * b.padded);
  b.w = take(kBlockRows * b.padded);
  b.q = take(kBlockRows * dh);
  b.residual = take(kBlockRows * dh);
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

// G = D^T D + rho I in double (dh x dh), factorised in place (lower Cholesky
// factor), then inverted: G is at most dh x dh, so its exact inverse is cheap
// and turns E = G^-1 D^T into one product.
void InvertGram(const Buffers& b, double rho) {
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
  for (int64_t col = 0; col < dh; ++col) {  // Cholesky: G = L L^T, L in the lower triangle
    double diagonal = g[col * dh + col];
    for (int64_t k = 0; k < col; ++k) diagonal -= g[col * dh + k] * g[col * dh + k];
    g[col * dh + col] = __builtin_sqrt(diagonal);  // > 0: G >= rho I
    for (int64_t row = col + 1; row < dh; ++row) {
      double value = g[row * dh + col];
      for (int64_t k = 0; k < col; ++k) value -= g[row * dh + k] * g[col * dh + k];
      g[row * dh + col] = value / g[col * dh + col];
    }
  }
  double* x = b.inverse64;  // column c of G^-1: L y = e_c, then L^T x = y
  for (int64_t c = 0; c < dh; ++c) {
    for (int64_t row = 0; row < dh; ++row) {
      double value = row == c ? 1.0 : 0.0;
      for (int64_t k = 0; k < row; ++k) value -= g[row * dh + k] * x[k * dh + c];
      x[row * dh + c] = value / g[row * dh + row];
    }
    for (int64_t row = dh - 1; row >= 0; --row) {
      double value = x[row * dh + c];
      for (int64_t k = row + 1; k < dh; ++k) value -= g[k * dh + row] * x[k * dh + c];
      x[row * dh + c] = value / g[row * dh + row];
    }
  }
  for (int64_t i = 0; i < dh * dh; ++i) b.inverse[i] = static_cast<float>(x[i]);
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

// Coefficient rows (kBlockRows x count, row stride `stride`) times a matrix
// (count rows of width dh, row stride `matrix_stride`), for the head-width
// vectors [v0, v0 + kVectors):
//   kResidual: result = init - coefficients * matrix      (R = Q - W D)
//   otherwise: result = (coefficients * matrix) * scale[row]  (the output)
enum class Product { kResidual, kOutput };

template <Product kMode, int kVectors>
void RowsTimesMatrix(const float* coefficients, int64_t stride, int64_t count, const float* matrix,
                     int64_t matrix_stride, const float* init, const float* scale, float* result,
                     int64_t result_stride, int64_t rows, int64_t v0) {
  __m512 acc[kBlockRows][kVectors];
  for (int64_t r = 0; r < kBlockRows; ++r) {
    for (int v = 0; v < kVectors; ++v) {
      acc[r][v] = kMode == Product::kResidual ? _mm512_load_ps(init + r * result_stride + (v0 + v) * kLanes)
                                               : _mm512_setzero_ps();
    }
  }
  for (int64_t j = 0; j < count; ++j) {
    __m512 row[kVectors];
    for (int v = 0; v < kVectors; ++v) row[v] = _mm512_loadu_ps(matrix + j * matrix_stride + (v0 + v) * kLanes);
    for (int64_t r = 0; r < kBlockRows; ++r) {
      const __m512 c = _mm512_set1_ps(coefficients[r * stride + j]);
      for (int v = 0; v < kVectors; ++v) {
        acc[r][v] = kMode == Product::kResidual ? _mm512_fnmadd_ps(c, row[v], acc[r][v])
                                                 : _mm512_fmadd_ps(c, row[v], acc[r][v]);
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int v = 0; v < kVectors; ++v) {
      const __m512 value = kMode == Product::kResidual ? acc[r][v] : _mm512_mul_ps(acc[r][v], _mm512_set1_ps(scale[r]));
      _mm512_storeu_ps(result + r * result_stride + (v0 + v) * kLanes, value);
    }
  }
}

template <Product kMode>
void RowsTimesMatrixAllVectors(const float* coefficients, int64_t stride, int64_t count, const float* matrix,
                               int64_t matrix_stride, const float* init, const float* scale, float* result,
                               int64_t result_stride, int64_t rows, int64_t dh) {
  const int64_t vectors = dh / kLanes;
  int64_t v0 = 0;
  for (; v0 + 2 <= vectors; v0 += 2) {
    RowsTimesMatrix<kMode, 2>(coefficients, stride, count, matrix, matrix_stride, init, scale, result, result_stride,
                              rows, v0);
  }
  if (v0 < vectors) {
    RowsTimesMatrix<kMode, 1>(coefficients, stride, count, matrix, matrix_stride, init, scale, result, result_stride,
                              rows, v0);
  }
}

// One ADMM step for the block's columns [j0, j0 + 16 kVectors):
// s = (kFirst ? 0 : Z) + R E, then Z = S_t(s) and, unless kLast, W = 2Z - s.
// self[r] is the column row r may not use (or -1).
template <bool kFirst, bool kLast, int kVectors>
void ThresholdColumns(const float* residual, const Buffers& b, const int64_t* self, __m512 threshold, int64_t j0) {
  const int64_t padded = b.padded;
  __m512 acc[kBlockRows][kVectors];
  for (int64_t r = 0; r < kBlockRows; ++r) {
    for (int v = 0; v < kVectors; ++v) {
      acc[r][v] = kFirst ? _mm512_setzero_ps() : _mm512_load_ps(b.z + r * padded + j0 + v * kLanes);
    }
  }
  for (int64_t k = 0; k < b.dh; ++k) {
    __m512 e[kVectors];
    for (int v = 0; v < kVectors; ++v) e[v] = _mm512_load_ps(b.solve_t + k * padded + j0 + v * kLanes);
    for (int64_t r = 0; r < kBlockRows; ++r) {
      const __m512 c = _mm512_set1_ps(residual[r * b.dh + k]);
      for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm512_fmadd_ps(c, e[v], acc[r][v]);
    }
  }
  const __m512 negative_threshold = _mm512_sub_ps(_mm512_setzero_ps(), threshold);
  const __m512 two = _mm512_set1_ps(2.0f);
  for (int64_t r = 0; r < kBlockRows; ++r) {
    for (int v = 0; v < kVectors; ++v) {
      const __m512 s = acc[r][v];
      const __m512 clamped = _mm512_min_ps(_mm512_max_ps(s, negative_threshold), threshold);
      __m512 z = _mm512_sub_ps(s, clamped);  // S_t(s) = s - clamp(s, -t, t)
      const uint64_t offset = static_cast<uint64_t>(self[r] - (j0 + v * kLanes));
      if (offset < static_cast<uint64_t>(kLanes)) {
        z = _mm512_mask_mov_ps(z, static_cast<__mmask16>(1u << offset), _mm512_setzero_ps());
      }
      _mm512_store_ps(b.z + r * padded + j0 + v * kLanes, z);
      if (!kLast) _mm512_store_ps(b.w + r * padded + j0 + v * kLanes, _mm512_fmsub_ps(two, z, s));
    }
  }
}

template <bool kFirst, bool kLast>
void Step(const float* residual, const Buffers& b, const int64_t* self, float threshold) {
  const __m512 t = _mm512_set1_ps(threshold);
  int64_t j0 = 0;
  for (; j0 + 2 * kLanes <= b.padded; j0 += 2 * kLanes) ThresholdColumns<kFirst, kLast, 2>(residual, b, self, t, j0);
  if (j0 < b.padded) ThresholdColumns<kFirst, kLast, 1>(residual, b, self, t, j0);
}

void RunStep(int step, int iterations, const float* residual, const Buffers& b, const int64_t* self, float threshold) {
  const bool first = step == 0, last = step + 1 == iterations;
  if (first && last) Step<true, true>(residual, b, self, threshold);
  else if (first) Step<true, false>(residual, b, self, threshold);
  else if (last) Step<false, true>(residual, b, self, threshold);
  else Step<false, false>(residual, b, self, threshold);
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

// Z -> relu(Z)^p or |Z|^p in place; scale[r] = 1 / (row sum + eps).
void PowerWeights(const Buffers& b, bool relu, float power, float* scale) {
  const int integer_power =
      power >= 1.0f && power <= 16.0f && static_cast<float>(static_cast<int>(power)) == power ? static_cast<int>(power) : 0;
  for (int64_t r = 0; r < kBlockRows; ++r) {
    float* row = b.z + r * b.padded;
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < b.padded; j += kLanes) {
      const __m512 z = _mm512_load_ps(row + j);
      const __m512 base = relu ? _mm512_max_ps(z, _mm512_setzero_ps()) : _mm512_abs_ps(z);
      const __m512 weight = Power(base, power, integer_power);
      _mm512_store_ps(row + j, weight);
      sum = _mm512_add_ps(sum, weight);
    }
    scale[r] = 1.0f / (_mm512_reduce_add_ps(sum) + kWeightEps);
  }
}

void SolveBlock(const HeadTask& task, const Buffers& b, int64_t begin, int64_t rows) {
  const int64_t dh = task.dh;
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
  for (int step = 0; step < task.iterations; ++step) {
    const float* residual = b.q;
    if (step > 0) {
      RowsTimesMatrixAllVectors<Product::kResidual>(b.w, b.padded, b.cols, b.dictionary, dh, b.q, nullptr, b.residual,
                                                    dh, kBlockRows, dh);
      residual = b.residual;
    }
    RunStep(step, task.iterations, residual, b, self, task.threshold);
  }
  float scale[kBlockRows];
  PowerWeights(b, task.relu, task.power, scale);
  // Random tokens carry zero values: only the first m columns reach the output.
  RowsTimesMatrixAllVectors<Product::kOutput>(b.z, b.padded, task.m, task.values, task.value_stride, nullptr, scale,
                                              task.out + begin * task.out_stride, task.out_stride, rows, dh);
}

}  // namespace

void SolveRowsAvx512(const HeadTask& task) {
  const Buffers b = Carve(task.scratch, task.m + task.r, task.dh);
  PrepareDictionary(task, b);
  InvertGram(b, task.rho);
  SolveTranspose(b);
  for (int64_t begin = task.row_begin; begin < task.row_end; begin += kBlockRows) {
    SolveBlock(task, b, begin, Min(kBlockRows, task.row_end - begin));
  }
}

}  // namespace optimization_kernel
}  // namespace detr
