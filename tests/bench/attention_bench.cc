// Attention alone at DETR's shapes (batch 1, 8 heads, head width 32), per
// type: time, achieved GFLOP/s (flop counts from the spec: softmax 4*n*m*dh,
// optimization (4K+4)*n*m*dh per head; linear 2*(n+m)*dh^2 + 2*n*dh; pooling
// m*dh, or w^2*n*dh in a w x w window) and peak extra memory (bytes allocated
// during the call, tracking allocator), next to sgemm on the same machine.
//
//   attention_bench [--threads=N] [google-benchmark flags, e.g. --benchmark_format=json]
#include <cstring>
#include <string>

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <torch/autograd.h>

#include "server/core/runtime/cpu_allocator.h"
#include "server/core/model/multihead_attention.h"
#include "server/core/kernels/optimization_attention_inference.h"
#include "server/core/kernels/optimization_attention_kernel.h"
#include "server/core/runtime/runtime.h"

namespace {

constexpr int64_t kHeads = 8, kHeadDim = 32;
int g_threads = 2;

struct Shape {
  const char* site;
  int64_t n, m;
  bool self;
  detr::core::TokenGrid grid;  // the encoder's feature map (e.g. 25 x 34 for 800 x 1066 at stride 32)
};
constexpr Shape kShapes[] = {
    {"encoder.self/400", 400, 400, true, {20, 20}},    {"encoder.self/850", 850, 850, true, {25, 34}},
    {"encoder.self/1400", 1400, 1400, true, {35, 40}}, {"decoder.cross/100x850", 100, 850, false, {}},
    {"decoder.self/100", 100, 100, true, {}},
};

void Report(benchmark::State& state, double flops_per_call, std::size_t peak_bytes) {
  state.counters["GFLOPs"] = benchmark::Counter(flops_per_call * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.counters["peak_extra_MB"] = static_cast<double>(peak_bytes) / 1e6;
  state.counters["tokens"] = static_cast<double>(state.range(0));
}

template <typename Fn>
void Measure(benchmark::State& state, Fn&& call, double flops) {
  detr::core::ConfigureThreads(g_threads);
  torch::NoGradGuard no_grad;
  call();  // warm-up
  std::size_t peak = 0;
  {
    detr::core::MemoryScope scope;
    call();
    peak = scope.peak_bytes();
  }
  for (auto _ : state) benchmark::DoNotOptimize(call().data_ptr());
  Report(state, flops, peak);
}

// blocked: the model's CPU inference path (softmax_attention_inference.h);
// otherwise the plain unfused path.
void BM_Softmax(benchmark::State& state, Shape shape, bool blocked) {
  at::manual_seed(0);
  auto q = at::randn({1, kHeads, shape.n, kHeadDim}), k = at::randn({1, kHeads, shape.m, kHeadDim});
  auto v = at::randn({1, kHeads, shape.m, kHeadDim});
  Measure(
      state,
      [&] {
        return blocked ? detr::core::SoftmaxAttention(q, k, v, {}) : detr::core::SoftmaxAttentionUnfused(q, k, v, {});
      },
      4.0 * shape.n * shape.m * kHeadDim * kHeads);
}

void BM_Optimization(benchmark::State& state, Shape shape, int iterations, double lambda,
                     detr::core::OptimizationBackend backend) {
  at::manual_seed(0);
  detr::core::OptimizationProblem problem;
  problem.queries = at::randn({1, kHeads, shape.n, kHeadDim});
  problem.dictionary = shape.self ? problem.queries : at::randn({1, kHeads, shape.m, kHeadDim});
  problem.exclude_self = shape.self;
  auto v = at::randn({1, kHeads, shape.m, kHeadDim});
  detr::core::AttentionOptions options;
  options.type = detr::core::AttentionType::kOptimization;
  options.iterations = iterations;
  options.lambda = lambda;
  Measure(
      state,
      [&] { return detr::core::OptimizationAttentionInference(problem, v, options, options.query_chunk, backend); },
      (4.0 * iterations + 4) * shape.n * shape.m * kHeadDim * kHeads);
}

// The reviewers' baselines on their ATen paths (the model's, in training and inference).
void BM_Linear(benchmark::State& state, Shape shape) {
  at::manual_seed(0);
  auto q = at::randn({1, kHeads, shape.n, kHeadDim}), k = at::randn({1, kHeads, shape.m, kHeadDim});
  auto v = at::randn({1, kHeads, shape.m, kHeadDim});
  Measure(
      state, [&] { return detr::core::LinearAttention(q, k, v, {}); },
      (2.0 * (shape.n + shape.m) * kHeadDim * kHeadDim + 2.0 * shape.n * kHeadDim) * kHeads);
}

void BM_Pooling(benchmark::State& state, Shape shape, int64_t window) {
  at::manual_seed(0);
  auto v = at::randn({1, kHeads, shape.m, kHeadDim});
  const double adds = window > 0 ? static_cast<double>(window * window) * shape.n : static_cast<double>(shape.m);
  Measure(
      state, [&] { return detr::core::PoolingAttention(shape.n, v, {}, window, shape.grid); },
      adds * kHeadDim * kHeads);
}

void BM_Sgemm(benchmark::State& state) {
  detr::core::ConfigureThreads(g_threads);
  auto a = at::randn({1024, 1024}), b = at::randn({1024, 1024});
  for (auto _ : state) benchmark::DoNotOptimize(at::mm(a, b).data_ptr());
  state.counters["GFLOPs"] =
      benchmark::Counter(2.0 * 1024 * 1024 * 1024 * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  detr::core::UseFastBlasKernels(argv);  // may re-execute the program: before anything else
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) g_threads = std::atoi(argv[i] + 10);
  }
  detr::core::CachingCpuAllocator allocator;  // the server's allocator: measures and reuses
  detr::core::ScopedCpuAllocator use_allocator(allocator);
  benchmark::RegisterBenchmark("sgemm/1024", BM_Sgemm)->Unit(benchmark::kMillisecond);
  for (const auto& shape : kShapes) {
    // softmax_identity_qk runs the same kernel as softmax on unprojected
    // inputs: at the attention level its cost is softmax's.
    benchmark::RegisterBenchmark((std::string("softmax/") + shape.site).c_str(), BM_Softmax, shape, true)
        ->Arg(shape.m)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((std::string("softmax_unfused/") + shape.site).c_str(), BM_Softmax, shape, false)
        ->Arg(shape.m)
        ->Unit(benchmark::kMillisecond);
    const double lambda = detr::core::AttentionOptions{}.lambda;
    auto add_optimization = [&](const std::string& name, int k, double lambda_k,
                                detr::core::OptimizationBackend backend) {
      benchmark::RegisterBenchmark((name + "/" + shape.site).c_str(), BM_Optimization, shape, k, lambda_k, backend)
          ->Arg(shape.m)
          ->Unit(benchmark::kMillisecond);
    };
    benchmark::RegisterBenchmark((std::string("linear/") + shape.site).c_str(), BM_Linear, shape)
        ->Arg(shape.m)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((std::string("pooling/") + shape.site).c_str(), BM_Pooling, shape, 0)
        ->Arg(shape.m)
        ->Unit(benchmark::kMillisecond);
    if (shape.grid.height > 0) {
      benchmark::RegisterBenchmark((std::string("pooling_window3/") + shape.site).c_str(), BM_Pooling, shape, 3)
          ->Arg(shape.m)
          ->Unit(benchmark::kMillisecond);
    }
    for (int k : {1, 3, 5, 10})
      add_optimization("optimization_K" + std::to_string(k), k, lambda, detr::core::OptimizationBackend::kAuto);
    if (shape.n == 850 && shape.self) {
      // The kernel skips products with zero coefficients; at lambda 0.001
      // almost none is zero: its worst case.
      add_optimization("optimization_K5_dense_lambda0.001", 5, 0.001, detr::core::OptimizationBackend::kAuto);
      // The other implementations of the same call: the AVX2 kernel (CPUs
      // without AVX-512) and the portable ATen path.
      if (detr::core::optimization_kernel::Available(detr::core::optimization_kernel::Isa::kAvx2, kHeadDim)) {
        add_optimization("optimization_K5_avx2", 5, lambda, detr::core::OptimizationBackend::kAvx2);
      }
      add_optimization("optimization_K5_aten", 5, lambda, detr::core::OptimizationBackend::kAten);
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
