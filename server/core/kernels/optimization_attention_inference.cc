#include "server/core/kernels/optimization_attention_inference.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include "server/core/kernels/optimization_attention_kernel.h"

namespace detr::core {

namespace optimization_kernel {

namespace {

Isa CpuIsa() {
#if defined(DETR_HAVE_SIMD_KERNELS)
  return __builtin_cpu_supports("avx512f")                                 ? Isa::kAvx512
         : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? Isa::kAvx2
                                                                           : Isa::kNone;
#else
  return Isa::kNone;
#endif
}

}  // namespace

Isa IsaCap(const char* value) {
  if (value == nullptr || *value == '\0') return Isa::kAvx512;
  std::string name(value);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::toupper(c); });
  if (name == "AVX512" || name == "ALL") return Isa::kAvx512;
  if (name == "AVX2") return Isa::kAvx2;
  if (name == "NONE" || name == "ATEN") return Isa::kNone;
  throw std::invalid_argument(std::string(kIsaCapVariable) + "=" + value + ": expected AVX512, AVX2 or NONE");
}

Isa IsaCapOfOneDnn(const char* value) {
  std::string name(value == nullptr ? "" : value);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::toupper(c); });
  if (name.rfind("AVX2", 0) == 0) return Isa::kAvx2;
  if (name == "SSE41" || name == "AVX") return Isa::kNone;
  return Isa::kAvx512;  // unset, ALL, AVX512_*, or a value oneDNN itself rejects
}

Isa BestIsa() {
  static const Isa best = [] {
    const char* cap = std::getenv(kIsaCapVariable);
    return std::min(CpuIsa(), cap != nullptr ? IsaCap(cap) : IsaCapOfOneDnn(std::getenv("ONEDNN_MAX_CPU_ISA")));
  }();
  return best;
}

const char* ToString(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "AVX-512";
    case Isa::kAvx2: return "AVX2";
    case Isa::kNone: break;
  }
  return "none (ATen path)";
}

bool Available(Isa isa, int64_t dh) {
  return isa != Isa::kNone && isa <= BestIsa() && dh > 0 && dh % 16 == 0 && dh <= 64;
}

int64_t ScratchFloats(Isa isa, int64_t cols, int64_t dh) {
  TORCH_CHECK(Available(isa, dh), "the optimization attention kernel does not run here");
  return isa == Isa::kAvx512 ? ScratchFloatsAvx512(cols, dh) : ScratchFloatsAvx2(cols, dh);
}

void SolveRows(Isa isa, const HeadTask& task) {
  TORCH_CHECK(Available(isa, task.dh), "the optimization attention kernel does not run here");
  if (isa == Isa::kAvx512) {
    SolveRowsAvx512(task);
  } else {
    SolveRowsAvx2(task);
  }
}

}  // namespace optimization_kernel

namespace {

// One ADMM Z/U step for one head's chunk, in one pass over its state:
//   s = A + U;  Z = S_t(s) * allowed;  U = s - Z;  W = Z - U
// (U + A - Z = s - Z is the spec's dual update). The allowed mask is not
// materialised: `keep` (cols, or null) marks unpadded keys, and with
// `self_offset` >= 0 row r may not use column self_offset + r.
template <typename T>
void FusedThresholdAndDual(const T* a, T* z, T* u, T* w, const T* keep, int64_t rows, int64_t cols, T threshold,
                           bool first_step, int64_t self_offset) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t offset = r * cols;
    const int64_t self = self_offset >= 0 ? self_offset + r : -1;
    for (int64_t j = 0; j < cols; ++j) {
      const T s = a[offset + j] + (first_step ? T(0) : u[offset + j]);
      const T magnitude = std::abs(s) - threshold;
      const bool allowed = j != self && (keep == nullptr || keep[j] != T(0));
      const T zj = magnitude > 0 && allowed ? std::copysign(magnitude, s) : T(0);
      const T uj = s - zj;
      z[offset + j] = zj;
      u[offset + j] = uj;
      w[offset + j] = zj - uj;
    }
  }
}

// Z -> weights in place for the power normalisers: |z|^p or relu(z)^p, then
// divided by the row sum + eps.
template <typename T>
void FusedPowerNormalise(T* z, int64_t rows, int64_t cols, T power, bool relu) {
  constexpr T kEps = T(1e-6);
  for (int64_t r = 0; r < rows; ++r) {
    T* row = z + r * cols;
    T sum = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const T base = relu ? std::max(row[j], T(0)) : std::abs(row[j]);
      const T value = power == T(5) ? base * base * base * base * base : std::pow(base, power);
      row[j] = value;
      sum += value;
    }
    const T scale = T(1) / (sum + kEps);
    for (int64_t j = 0; j < cols; ++j) row[j] *= scale;
  }
}

// (rows, cols) allowed coefficients of query rows [begin, begin + rows), for
// the generic (softmax / top-k) normaliser.
at::Tensor AllowedChunk(const at::Tensor& keep_row, bool exclude_self, int64_t begin, int64_t rows, int64_t cols,
                        const at::TensorOptions& options) {
  auto allowed =
      keep_row.defined() ? keep_row.unsqueeze(0).expand({rows, cols}).contiguous() : at::ones({rows, cols}, options);
  if (exclude_self) allowed.slice(1, begin, begin + rows).diagonal().zero_();
  return allowed;
}

struct HeadProblem {
  at::Tensor queries;     // (n, dh) prepared
  at::Tensor dictionary;  // (cols, dh) prepared
  at::Tensor solve_t;     // (dh, cols) = G^-1 D^T
  at::Tensor values;      // (m, dh)
  at::Tensor keep;        // (cols) 0/1, or undefined
  at::Tensor out;         // (n, dh), written
};

// All chunks of one head. Runs inside a parallel region: its products are
// single-threaded, and its chunk state stays in this core's cache across
// all K steps.
template <typename T>
void SolveHead(const HeadProblem& head, const AttentionOptions& options, bool exclude_self, int64_t chunk) {
  const int64_t n = head.queries.size(0), dh = head.queries.size(1), cols = head.dictionary.size(0);
  const int64_t m = head.values.size(0);
  auto tensor_options = head.queries.options();
  auto a = at::empty({chunk, cols}, tensor_options), z = at::empty_like(a), u = at::empty_like(a),
       w = at::empty_like(a);
  auto residual = at::empty({chunk, dh}, tensor_options);
  const T threshold = static_cast<T>(options.lambda / options.rho);
  const T* keep = head.keep.defined() ? head.keep.data_ptr<T>() : nullptr;
  const bool fused_normaliser = options.top_k == 0 && options.normalizer != Normalizer::kSoftmax;
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t rows = std::min(chunk, n - begin);
    auto q = head.queries.narrow(0, begin, rows);
    auto A = a.narrow(0, 0, rows), Z = z.narrow(0, 0, rows), U = u.narrow(0, 0, rows), W = w.narrow(0, 0, rows);
    auto R = residual.narrow(0, 0, rows);
    at::mm_out(A, q, head.solve_t);  // step 1: A = Q G^-1 D^T
    for (int step = 0; step < options.iterations; ++step) {
      if (step > 0) {
        at::mm_out(R, W, head.dictionary);     // R = W D
        R.neg_().add_(q);                      // R = Q - W D
        at::addmm_out(A, W, R, head.solve_t);  // A = W + R G^-1 D^T
      }
      FusedThresholdAndDual<T>(A.data_ptr<T>(), Z.data_ptr<T>(), U.data_ptr<T>(), W.data_ptr<T>(), keep, rows, cols,
                               threshold, step == 0, exclude_self ? begin : -1);
    }
    at::Tensor weights = Z;
    if (fused_normaliser) {
      FusedPowerNormalise<T>(Z.data_ptr<T>(), rows, cols, static_cast<T>(options.power),
                             options.normalizer == Normalizer::kReluPower);
    } else {
      weights =
          CoefficientsToWeights(Z, AllowedChunk(head.keep, exclude_self, begin, rows, cols, tensor_options), options);
    }
    auto out_rows = head.out.narrow(0, begin, rows);
    at::mm_out(out_rows, weights.narrow(1, 0, m), head.values);
  }
}

// Whether the vectorised kernel (optimization_attention_kernel.h) computes
// this problem, given an instruction set it runs with here: float32 on the
// CPU, a power normaliser (power > 0) without top-k.
bool KernelTakes(const OptimizationProblem& problem, const at::Tensor& values, const AttentionOptions& options) {
  const auto is_float = [](const at::Tensor& t) { return !t.defined() || t.scalar_type() == at::kFloat; };
  return problem.queries.is_cpu() && is_float(problem.queries) && is_float(problem.dictionary) && is_float(values) &&
         is_float(problem.random_directions) && options.top_k == 0 && options.normalizer != Normalizer::kSoftmax &&
         options.iterations >= 1 && options.power > 0;
}

optimization_kernel::Isa ChooseIsa(const OptimizationProblem& problem, const at::Tensor& values,
                                   const AttentionOptions& options, OptimizationBackend backend) {
  using optimization_kernel::Isa;
  const auto dh = problem.queries.size(3);
  if (backend == OptimizationBackend::kAten) return Isa::kNone;
  if (backend == OptimizationBackend::kAuto) {
    const Isa best = optimization_kernel::BestIsa();
    return KernelTakes(problem, values, options) && optimization_kernel::Available(best, dh) ? best : Isa::kNone;
  }
  const Isa isa = backend == OptimizationBackend::kAvx512 ? Isa::kAvx512 : Isa::kAvx2;
  TORCH_CHECK(optimization_kernel::Available(isa, dh), "the ", optimization_kernel::ToString(isa),
              " kernel does not run here (CPU, build, or head width ", dh, ")");
  TORCH_CHECK(KernelTakes(problem, values, options),
              "the kernel takes float32 with a power normaliser (power > 0) and no top_k");
  return isa;
}

at::Tensor UnitStrideRows(const at::Tensor& x) { return x.stride(-1) == 1 ? x : x.contiguous(); }

// The problem's tensors as the kernel reads them, and its output.
struct KernelInputs {
  at::Tensor queries, dictionary, values, padding, random, out;
  int64_t heads = 0, n = 0, m = 0, r = 0, dh = 0;
};

KernelInputs PrepareKernelInputs(const OptimizationProblem& problem, const at::Tensor& values) {
  KernelInputs in;
  in.queries = UnitStrideRows(problem.queries);
  in.dictionary = UnitStrideRows(problem.dictionary);
  in.values = UnitStrideRows(values);
  if (problem.key_padding.defined()) in.padding = problem.key_padding.to(at::kBool).contiguous();
  if (problem.random_directions.defined()) in.random = problem.random_directions.contiguous();
  in.heads = in.queries.size(1);
  in.n = in.queries.size(2);
  in.m = in.dictionary.size(2);
  in.r = in.random.defined() ? in.random.size(1) : 0;
  in.dh = in.queries.size(3);
  // (B, n, H, dh), returned as a (B, H, n, dh) view: the caller merges heads
  // back into (B, n, H * dh) without a copy.
  in.out = at::empty({in.queries.size(0), in.n, in.heads, in.dh}, in.queries.options());
  return in;
}

optimization_kernel::HeadTask MakeTask(const KernelInputs& in, const AttentionOptions& options, bool exclude_self,
                                       int64_t b, int64_t h) {
  optimization_kernel::HeadTask task;
  task.queries = in.queries.data_ptr<float>() + b * in.queries.stride(0) + h * in.queries.stride(1);
  task.query_stride = in.queries.stride(2);
  task.dictionary = in.dictionary.data_ptr<float>() + b * in.dictionary.stride(0) + h * in.dictionary.stride(1);
  task.dictionary_stride = in.dictionary.stride(2);
  task.values = in.values.data_ptr<float>() + b * in.values.stride(0) + h * in.values.stride(1);
  task.value_stride = in.values.stride(2);
  task.key_padding = in.padding.defined() ? in.padding.data_ptr<bool>() + b * in.m : nullptr;
  task.random_directions = in.r > 0 ? in.random.data_ptr<float>() + h * in.r * in.dh : nullptr;
  task.out = in.out.data_ptr<float>() + (b * in.n * in.heads + h) * in.dh;
  task.out_stride = in.heads * in.dh;
  task.m = in.m;
  task.r = in.r;
  task.dh = in.dh;
  task.exclude_self = exclude_self;
  task.normalize_inputs = options.normalize_inputs;
  task.relu = options.normalizer == Normalizer::kReluPower;
  task.iterations = options.iterations;
  task.threshold = static_cast<float>(options.lambda / options.rho);
  task.rho = options.rho;
  task.power = static_cast<float>(options.power);
  return task;
}

// The kernel's path: one task per image, head and range of query rows. A head
// is split into row ranges only when there are fewer heads than threads:
// every range prepares the head's dictionary and E again.
at::Tensor SolveWithKernel(const OptimizationProblem& problem, const at::Tensor& values,
                           const AttentionOptions& options, optimization_kernel::Isa isa) {
  using optimization_kernel::kBlockRows;
  const KernelInputs in = PrepareKernelInputs(problem, values);
  const int64_t batch = in.queries.size(0), tasks_per_part = batch * in.heads;
  if (tasks_per_part == 0 || in.n == 0) return in.out.transpose(1, 2);
  const int64_t blocks = (in.n + kBlockRows - 1) / kBlockRows;
  const int64_t parts =
      std::min(blocks, std::max<int64_t>(1, (at::get_num_threads() + tasks_per_part - 1) / tasks_per_part));
  const int64_t rows_per_part = (blocks + parts - 1) / parts * kBlockRows;
  at::parallel_for(0, tasks_per_part * parts, 1, [&](int64_t begin, int64_t end) {
    auto scratch = at::empty({optimization_kernel::ScratchFloats(isa, in.m + in.r, in.dh)}, in.queries.options());
    for (int64_t index = begin; index < end; ++index) {
      const int64_t b = index / (in.heads * parts), h = index / parts % in.heads, part = index % parts;
      auto task = MakeTask(in, options, problem.exclude_self, b, h);
      task.row_begin = std::min(in.n, part * rows_per_part);
      task.row_end = std::min(in.n, (part + 1) * rows_per_part);
      task.scratch = scratch.data_ptr<float>();
      if (task.row_begin < task.row_end) optimization_kernel::SolveRows(isa, task);
    }
  });
  return in.out.transpose(1, 2);
}

}  // namespace

at::Tensor OptimizationAttentionInference(const OptimizationProblem& problem, const at::Tensor& values,
                                          const AttentionOptions& options, int64_t chunk_rows,
                                          OptimizationBackend backend) {
  const auto batch = problem.queries.size(0), heads = problem.queries.size(1);
  const auto n = problem.queries.size(2), m = problem.dictionary.size(2);
  TORCH_CHECK(!problem.exclude_self || n == m, "exclude_self needs as many queries as keys");
  const auto isa = ChooseIsa(problem, values, options, backend);
  if (isa != optimization_kernel::Isa::kNone) return SolveWithKernel(problem, values, options, isa);
  auto queries = PrepareQueries(problem.queries, options).contiguous();
  auto dictionary = PrepareDictionary(problem, options).contiguous();  // (B, H, m + r, dh)
  const auto cols = dictionary.size(2);
  const auto tensor_options = queries.options();

  // keep: (B, cols) 0/1 for padded keys (random tokens always kept).
  at::Tensor keep;
  if (problem.key_padding.defined()) {
    keep = at::ones({batch, cols}, tensor_options);
    keep.slice(1, 0, m).copy_(problem.key_padding.logical_not().to(tensor_options.dtype()));
  }
  // G = D^T D + rho I, factorised once per head; E = G^-1 D^T shared by every chunk and step.
  auto dict_t = dictionary.transpose(-1, -2);
  auto gram = at::matmul(dict_t, dictionary);
  gram.diagonal(0, -2, -1).add_(options.rho);
  auto solve_t = at::cholesky_solve(dict_t.contiguous(), at::linalg_cholesky(gram)).contiguous();  // (B, H, dh, cols)
  auto values_c = values.contiguous();
  auto out = at::empty({batch, heads, n, values.size(3)}, tensor_options);
  const int64_t chunk = chunk_rows > 0 ? std::min(chunk_rows, n) : n;

  AT_DISPATCH_FLOATING_TYPES(queries.scalar_type(), "optimization_attention_inference", [&] {
    at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {
      for (int64_t index = begin; index < end; ++index) {
        const int64_t b = index / heads, h = index % heads;
        HeadProblem head{
            queries[b][h], dictionary[b][h], solve_t[b][h], values_c[b][h], keep.defined() ? keep[b] : at::Tensor(),
            out[b][h]};
        SolveHead<scalar_t>(head, options, problem.exclude_self, chunk);
      }
    });
  });
  return out;
}

}  // namespace detr::core
