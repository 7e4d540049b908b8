// The model alone, no server: median forward time at a batch size, for the
// serving benchmark's baseline (tests/bench/run_serving_bench.sh).
//
//   offline_forward_bench --model-config C.json --height H --width W --batch B [--runs N] [--threads T]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <torch/autograd.h>

#include "server/core/runtime/cpu_allocator.h"
#include "server/core/model/model_factory.h"
#include "server/core/runtime/runtime.h"

int main(int argc, char** argv) {
  detr::core::UseFastBlasKernels(argv);  // may re-execute the program: before anything else
  std::string config_path;
  int height = 480, width = 640, batch = 1, runs = 20, threads = 0;
  CLI::App app{"Median forward time of one model, without the server."};
  app.add_option("--model-config", config_path)->required()->check(CLI::ExistingFile);
  app.add_option("--height", height);
  app.add_option("--width", width);
  app.add_option("--batch", batch);
  app.add_option("--runs", runs);
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);

  detr::core::ConfigureThreads(threads);
  detr::core::CachingCpuAllocator allocator;  // as the server runs
  detr::core::ScopedCpuAllocator use_allocator(allocator);
  auto model = detr::core::BuildModel({detr::core::ModelConfig::FromJsonFile(config_path), "", 0, true}).model;
  auto pixels = at::randn({batch, 3, height, width});
  auto mask = at::zeros({batch, height, width}, at::kBool);
  torch::NoGradGuard no_grad;
  model->forward(pixels, mask);  // warm-up
  std::vector<double> seconds;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    model->forward(pixels, mask);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  std::printf("offline forward batch %d at %dx%d: median %.1f ms, %.2f images/s (%d runs, %s)\n", batch, height, width,
              median * 1e3, batch / median, runs, detr::core::RuntimeSummary().c_str());
  return 0;
}
