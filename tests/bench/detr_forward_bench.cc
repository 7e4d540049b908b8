// DETR-R50 forward at 800x1066, batch 1, for each attention type on all sites.
//
//   detr_forward_bench --weights=FILE [--threads=N] [google-benchmark flags]
//
// FILE holds softmax R50 weights; if absent it is created from a seeded random
// initialisation, so that tests/bench/pytorch_eager_reference.py can run the
// same weights. Non-softmax models load it as in the paper's swap (their q/k
// rows are skipped). Prints, per type, the time of one forward pass, and the
// int8 variant's (the backbone's blocks in int8) beside float32, whole and
// backbone alone. Its calibration, FILE with .int8.json, is measured on
// random normal inputs when absent: right for speed, meaningless for
// accuracy (tests/bench/int8_accuracy.py measures that on trained models).
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <torch/autograd.h>

#include "server/core/io/checkpoint.h"
#include "server/core/io/int8_calibration.h"
#include "server/core/runtime/cpu_allocator.h"
#include "server/core/model/model_factory.h"
#include "server/core/runtime/runtime.h"
#include "server/core/io/tensor_io.h"

namespace {

std::string g_weights = "build/bench/detr-r50-seed0.safetensors";
int g_threads = 2;
constexpr int64_t kHeight = 800, kWidth = 1066;

detr::core::ModelConfig R50(detr::core::AttentionType type) {
  detr::core::ModelConfig config;  // defaults are the official DETR-R50
  for (auto site : {detr::core::AttentionSite::kEncoderSelf, detr::core::AttentionSite::kDecoderSelf,
                    detr::core::AttentionSite::kDecoderCross}) {
    config.attention(site).type = type;
  }
  return config;
}

void EnsureWeights() {
  if (std::filesystem::exists(g_weights)) return;
  std::filesystem::create_directories(std::filesystem::path(g_weights).parent_path());
  auto loaded = detr::core::BuildModel({R50(detr::core::AttentionType::kSoftmax), "", 0, /*optimize=*/false});
  detr::core::SaveSafetensors(g_weights, detr::core::StateDict(*loaded.model));
  std::cerr << "wrote seeded random R50 weights to " << g_weights << "\n";
}

std::string CalibrationPath() { return std::filesystem::path(g_weights).replace_extension(".int8.json").string(); }

void EnsureCalibration() {
  if (std::filesystem::exists(CalibrationPath())) return;
  detr::core::ConfigureThreads(g_threads);
  auto loaded = detr::core::BuildModel({R50(detr::core::AttentionType::kSoftmax), g_weights, 0});
  at::manual_seed(2);
  torch::NoGradGuard no_grad;
  const auto* body = loaded.model->onednn_backbone();
  if (!body) return;  // no oneDNN: the int8 rows report the error
  detr::core::Int8Calibration calibration;
  calibration.weights_fingerprint = body->WeightsFingerprint();
  calibration.ranges = body->MeasureRanges(at::randn({4, 3, kHeight / 2, kWidth / 2}));
  calibration.images = 4;
  calibration.source = "random normal inputs (detr_forward_bench; for speed only)";
  detr::core::WriteInt8Calibration(CalibrationPath(), calibration);
  std::cerr << "wrote an int8 calibration for speed only to " << CalibrationPath() << "\n";
}

// How the model is prepared for inference.
enum class Preparation {
  kNone,           // as loaded: frozen batch-norms as separate ops, NCHW
  kLibTorchConvs,  // folded batch-norms, channels-last, LibTorch's convolutions
  kFull,           // as the server runs: plus the oneDNN (Winograd) backbone
  kInt8,           // kFull with the backbone's blocks in int8
};

detr::core::LoadedModel Build(detr::core::AttentionType type, Preparation preparation) {
  detr::core::ConfigureThreads(g_threads);
  detr::core::ModelSpec spec{R50(type), g_weights, 0, preparation != Preparation::kNone};
  spec.onednn_backbone = preparation == Preparation::kFull || preparation == Preparation::kInt8;
  if (preparation == Preparation::kInt8) spec.int8_calibration = CalibrationPath();
  return detr::core::BuildModel(spec);
}

// The backbone alone (the oneDNN body: stem to layer4), float32 or int8.
void BM_BackboneR50(benchmark::State& state, Preparation preparation) {
  auto loaded = Build(detr::core::AttentionType::kSoftmax, preparation);
  const auto* body = loaded.model->onednn_backbone();
  if (!body) {
    state.SkipWithError(("no oneDNN backbone: " + loaded.model->backbone_engine()).c_str());
    return;
  }
  at::manual_seed(1);
  const auto pixels = at::randn({1, 3, kHeight, kWidth});
  torch::NoGradGuard no_grad;
  body->forward(pixels);  // warm-up: the plan for this shape
  for (auto _ : state) benchmark::DoNotOptimize(body->forward(pixels).data_ptr());
  state.SetLabel(body->Summary());
}

void BM_DetrR50Forward(benchmark::State& state, detr::core::AttentionType type, Preparation preparation) {
  auto loaded = Build(type, preparation);
  at::manual_seed(1);
  auto pixels = at::randn({1, 3, kHeight, kWidth});
  auto mask = at::zeros({1, kHeight, kWidth}, at::kBool);
  torch::NoGradGuard no_grad;
  loaded.model->forward(pixels, mask);  // warm-up: oneDNN primitive creation, allocator
  for (auto _ : state) {
    auto out = loaded.model->forward(pixels, mask);
    benchmark::DoNotOptimize(out.logits.data_ptr());
  }
  state.counters["threads"] = g_threads;
  {
    detr::core::MemoryScope scope;
    loaded.model->forward(pixels, mask);
    state.counters["peak_MB"] = static_cast<double>(scope.peak_bytes()) / 1e6;
  }
  const char* note = preparation == Preparation::kNone            ? " (no BN folding, NCHW)"
                     : preparation == Preparation::kLibTorchConvs ? " (LibTorch convolutions)"
                     : preparation == Preparation::kInt8          ? " (int8 backbone)"
                                                                  : "";
  state.SetLabel(std::string(detr::core::ToString(type)) + note);
}

}  // namespace

int main(int argc, char** argv) {
  detr::core::UseFastBlasKernels(argv);  // may re-execute the program: before anything else
  for (int i = 1; i < argc; ++i) {       // our flags first; the rest go to Google Benchmark
    if (std::strncmp(argv[i], "--weights=", 10) == 0) g_weights = argv[i] + 10;
    if (std::strncmp(argv[i], "--threads=", 10) == 0) g_threads = std::atoi(argv[i] + 10);
  }
  EnsureWeights();
  EnsureCalibration();
  // As the server runs: freed activation blocks are reused, not unmapped.
  detr::core::CachingCpuAllocator allocator;
  detr::core::ScopedCpuAllocator use_allocator(allocator);
  using detr::core::AttentionType;
  benchmark::RegisterBenchmark("detr_r50_800x1066/softmax", BM_DetrR50Forward, AttentionType::kSoftmax,
                               Preparation::kFull);
  benchmark::RegisterBenchmark("detr_r50_800x1066/softmax_identity_qk", BM_DetrR50Forward,
                               AttentionType::kSoftmaxIdentityQk, Preparation::kFull);
  benchmark::RegisterBenchmark("detr_r50_800x1066/optimization", BM_DetrR50Forward, AttentionType::kOptimization,
                               Preparation::kFull);
  benchmark::RegisterBenchmark("detr_r50_800x1066/softmax_libtorch_convolutions", BM_DetrR50Forward,
                               AttentionType::kSoftmax, Preparation::kLibTorchConvs);
  benchmark::RegisterBenchmark("detr_r50_800x1066/softmax_no_folding", BM_DetrR50Forward, AttentionType::kSoftmax,
                               Preparation::kNone);
  benchmark::RegisterBenchmark("detr_r50_800x1066/softmax_int8", BM_DetrR50Forward, AttentionType::kSoftmax,
                               Preparation::kInt8);
  benchmark::RegisterBenchmark("r50_backbone_800x1066/float32", BM_BackboneR50, Preparation::kFull);
  benchmark::RegisterBenchmark("r50_backbone_800x1066/int8", BM_BackboneR50, Preparation::kInt8);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
