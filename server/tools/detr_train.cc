// detr-train: trains a DETR model (any attention per site) on a COCO-format
// set: DETR's set loss with auxiliary losses, AdamW, gradient clipping, a 10x
// learning-rate cut late in the run, periodic checkpoints, resumable.
//
//   detr-train --model-config C.json --annotations train.json --images DIR --output OUT
//              [--steps N] [--minutes M] [--batch-size 32] [--lr 2e-4] [--resume] [--init-from W.safetensors]
//              [--scales 96,112,128,144,160 --max-size 213]   (the official random resize)
//              [--crop-scales 64,80,96 --crop-size 61,96 [--crop-probability 0.5]]   (and its random crop)
//              [--backbone-bf16]   (the backbone's convolutions in bfloat16: faster on AMX/AVX-512 BF16)
// OUT/checkpoint.safetensors (weights), OUT/optimizer.pt, OUT/state.json (with
// --keep-checkpoints also OUT/checkpoint-STEP.safetensors of each); at the end
// OUT/model.safetensors (float16 with --half) and OUT/model.json.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/types.h>  // clip_grad.h needs it first
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include "server/core/io/checkpoint.h"
#include "server/core/runtime/cpu_allocator.h"
#include "server/core/model/detr.h"
#include "server/core/model/frozen_batch_norm.h"
#include "server/core/runtime/runtime.h"
#include "server/core/io/tensor_io.h"
#include "server/training/detection_dataset.h"
#include "server/training/set_criterion.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string model_config, annotations, images, output, init_from;
  int64_t steps = 0;
  double minutes = 0;
  int batch_size = 32, threads = 0, checkpoint_every = 200, log_every = 10;
  double lr = 2e-4, weight_decay = 1e-4, clip = 0.1, lr_drop_fraction = 0.85;
  bool resume = false, freeze_stem = true, half = false, backbone_bf16 = false, keep_checkpoints = false;
  std::uint64_t seed = 0;
  detr::training::RandomResize resize;
  detr::training::RandomSizeCrop crop;
};

// Parameters to train: all, except the stem and layer1 when frozen (the
// official default); trainable batch-norms contribute weight and bias.
std::vector<at::Tensor> TrainableTensors(detr::core::DetrImpl& model, bool freeze_stem) {
  auto frozen = [&](const std::string& name) {
    return freeze_stem && (name.rfind("backbone.0.body.conv1", 0) == 0 || name.rfind("backbone.0.body.bn1.", 0) == 0 ||
                           name.rfind("backbone.0.body.layer1.", 0) == 0);
  };
  std::vector<at::Tensor> tensors;
  for (const auto& item : model.named_parameters()) {
    if (frozen(item.key())) item.value().requires_grad_(false);
    else tensors.push_back(item.value());
  }
  for (const auto& item : model.named_modules()) {
    if (auto* bn = item.value()->as<detr::core::FrozenBatchNorm2dImpl>()) {
      const bool train = !frozen(item.key() + ".");
      bn->SetTrainable(train);
      if (train) {
        tensors.push_back(bn->weight);
        tensors.push_back(bn->bias);
      }
    }
  }
  return tensors;
}

void SetLearningRate(torch::optim::AdamW& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

void SaveCheckpoint(const Options& options, detr::core::DetrImpl& model, torch::optim::AdamW& optimizer, int64_t step) {
  detr::core::SaveSafetensors((fs::path(options.output) / "checkpoint.safetensors").string(),
                              detr::core::StateDict(model));
  torch::save(optimizer, (fs::path(options.output) / "optimizer.pt").string());
  std::ofstream((fs::path(options.output) / "state.json").string()) << nlohmann::json{{"step", step}}.dump() << "\n";
  // The weights of every checkpoint, for a training curve (server/tools/training_curve.py).
  if (options.keep_checkpoints) {
    fs::copy_file(fs::path(options.output) / "checkpoint.safetensors",
                  fs::path(options.output) / ("checkpoint-" + std::to_string(step) + ".safetensors"),
                  fs::copy_options::overwrite_existing);
  }
}

void AddOptions(CLI::App& app, Options& o, std::vector<int>& crop_size) {
  app.add_option("--model-config", o.model_config, "model config JSON")->required()->check(CLI::ExistingFile);
  app.add_option("--annotations", o.annotations, "COCO annotations (training split)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--images", o.images, "directory of its images")->required()->check(CLI::ExistingDirectory);
  app.add_option("--output", o.output, "checkpoint directory")->required();
  app.add_option("--steps", o.steps, "optimizer steps in all (with --minutes: whichever ends first)");
  app.add_option("--minutes", o.minutes, "wall-clock budget of this run");
  app.add_option("--batch-size", o.batch_size)->capture_default_str();
  app.add_option("--lr", o.lr)->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay)->capture_default_str();
  app.add_option("--clip", o.clip, "gradient norm clip")->capture_default_str();
  app.add_option("--lr-drop-fraction", o.lr_drop_fraction, "cut the learning rate 10x after this fraction of --steps")
      ->capture_default_str();
  app.add_option("--checkpoint-every", o.checkpoint_every)->capture_default_str();
  app.add_flag("--keep-checkpoints", o.keep_checkpoints,
               "also keep each checkpoint's weights as OUT/checkpoint-STEP.safetensors (a training curve)");
  app.add_option("--threads", o.threads, "0 = every core")->capture_default_str();
  app.add_option("--seed", o.seed)->capture_default_str();
  app.add_option("--init-from", o.init_from, "start from these weights (e.g. a softmax model for optimization sites)");
  app.add_flag("--resume", o.resume, "continue from OUT's last checkpoint");
  app.add_flag("!--train-stem", o.freeze_stem, "also train the stem and layer1 (frozen by default)");
  app.add_flag("--half", o.half, "export model.safetensors as float16");
  app.add_flag("--backbone-bf16", o.backbone_bf16,
               "run the backbone's convolutions in bfloat16 (autocast; float32 weights) where the CPU has AMX or "
               "AVX-512 BF16; float32 elsewhere");
  app.add_option("--scales", o.resize.scales,
                 "random resize: each training image's shortest edge is one of these (official RandomResize)")
      ->delimiter(',')
      ->check(CLI::Range(16, 4096));
  app.add_option("--max-size", o.resize.max_size, "random resize: longest edge at most this (0 = no limit)")
      ->check(CLI::Range(0, 8192));
  app.add_option("--crop-scales", o.crop.scales,
                 "random crop (official RandomSizeCrop): the intermediate resize's shortest edges; the official "
                 "400,500,600 at 128 px is 64,80,96")
      ->delimiter(',')
      ->check(CLI::Range(16, 4096));
  app.add_option("--crop-size", crop_size,
                 "random crop: MIN,MAX side of the region, in intermediate pixels (official "
                 "384,600; at 128 px 61,96)")
      ->delimiter(',')
      ->expected(2)
      ->check(CLI::Range(1, 4096));
  app.add_option("--crop-probability", o.crop.probability, "random crop: share of batches cropped (official 0.5)")
      ->check(CLI::Range(0.0, 1.0));
}

// Options that depend on each other; an error message, or empty when they fit.
std::string CompleteOptions(const CLI::App& app, Options& o, const std::vector<int>& crop_size) {
  if (!o.crop.scales.empty()) {
    if (crop_size.size() != 2 || crop_size[0] > crop_size[1])
      return "--crop-scales needs --crop-size MIN,MAX with MIN <= MAX";
    o.crop.min_size = crop_size[0];
    o.crop.max_size = crop_size[1];
    if (app.count("--crop-probability") == 0) o.crop.probability = 0.5;
  }
  if (o.steps <= 0 && o.minutes <= 0) return "give --steps and/or --minutes";
  return "";
}

// The model to train: resumed from OUT's checkpoint, started from --init-from,
// or fresh; `step` is where it resumes.
detr::core::Detr MakeModel(const Options& o, const detr::core::ModelConfig& config, int64_t& step) {
  at::manual_seed(o.seed);
  detr::core::Detr model(config);
  step = 0;
  const auto checkpoint = (fs::path(o.output) / "checkpoint.safetensors").string();
  if (o.resume && fs::exists(checkpoint)) {
    detr::core::LoadWeightsFile(*model, checkpoint);
    std::ifstream state((fs::path(o.output) / "state.json").string());
    step = nlohmann::json::parse(state).at("step").get<int64_t>();
  } else if (!o.init_from.empty()) {
    for (const auto& line : detr::core::LoadWeightsFile(*model, o.init_from).skipped) {
      std::fprintf(stderr, "note: %s\n", line.c_str());
    }
  }
  if (o.backbone_bf16 && !detr::core::CpuRunsBfloat16Natively()) {
    std::fprintf(stderr,
                 "note: --backbone-bf16 needs AMX or AVX-512 BF16, which this CPU (or ONEDNN_MAX_CPU_ISA) does not "
                 "offer: training in float32 (%s)\n",
                 detr::core::RuntimeSummary().c_str());
  } else if (o.backbone_bf16) {
    model->UseBfloat16BackboneTraining(true);
  }
  model->train();
  return model;
}

// Progress of the steps since the last line: loss, its parts, speed, and the
// time left by the steps still to run at this run's pace, or the minutes'
// budget, whichever ends first.
void LogProgress(const Options& o, int64_t step, int64_t first_step, double elapsed, double images, double mean_loss,
                 std::map<std::string, double>& parts) {
  double left = -1;
  if (o.steps > 0) left = elapsed / static_cast<double>(step - first_step) * static_cast<double>(o.steps - step);
  if (o.minutes > 0) left = left < 0 ? o.minutes * 60 - elapsed : std::min(left, o.minutes * 60 - elapsed);
  std::printf("step %lld%s loss %.4f ce %.4f bbox %.4f giou %.4f | %.1f img/s, %.1f min, ETA %.1f min\n",
              static_cast<long long>(step), o.steps > 0 ? ("/" + std::to_string(o.steps)).c_str() : "", mean_loss,
              parts["loss_ce"], parts["loss_bbox"], parts["loss_giou"], images / elapsed, elapsed / 60,
              std::max(left, 0.0) / 60);
  std::fflush(stdout);
}

// Runs optimizer steps from `step` until --steps or --minutes; the step reached.
int64_t Train(const Options& o, const detr::core::ModelConfig& config, const detr::training::DetectionDataset& data,
              detr::core::Detr& model, int64_t step) {
  auto tensors = TrainableTensors(*model, o.freeze_stem);
  torch::optim::AdamW optimizer(tensors, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  if (o.resume && fs::exists((fs::path(o.output) / "optimizer.pt").string())) {
    torch::load(optimizer, (fs::path(o.output) / "optimizer.pt").string());
    std::fprintf(stderr, "resumed at step %lld\n", static_cast<long long>(step));
  }
  detr::training::SetCriterionOptions criterion;
  criterion.num_classes = config.num_classes;
  const int64_t drop_step = o.steps > 0 ? static_cast<int64_t>(o.steps * o.lr_drop_fraction) : -1;
  SetLearningRate(optimizer, drop_step >= 0 && step >= drop_step ? o.lr / 10 : o.lr);

  std::mt19937_64 rng(o.seed + static_cast<std::uint64_t>(step));  // a resumed run draws new batches
  // Same-size batches: nothing padded (see RandomResize).
  detr::training::BatchSampler sampler(data.SizeGroups());
  const auto start = Clock::now();
  const int64_t first_step = step;
  double images = 0, loss_sum = 0;
  int logged = 0;
  while ((o.steps <= 0 || step < o.steps) &&
         (o.minutes <= 0 || std::chrono::duration<double>(Clock::now() - start).count() < o.minutes * 60)) {
    const auto batch = sampler.Next(static_cast<std::size_t>(o.batch_size), rng);
    at::Tensor pixels, mask;
    std::vector<detr::training::Target> targets;
    data.Batch(batch, pixels, mask, targets, o.resize, &rng, o.crop);
    auto out = model->forward(pixels, mask, /*all_layers=*/true);
    auto [loss, parts] = detr::training::SetLoss(out, targets, criterion);
    optimizer.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(tensors, o.clip);
    optimizer.step();
    ++step;
    if (step == drop_step) SetLearningRate(optimizer, o.lr / 10);
    images += static_cast<double>(batch.size());
    loss_sum += loss.item<double>();
    ++logged;
    if (step % o.log_every == 0) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      LogProgress(o, step, first_step, elapsed, images, loss_sum / logged, parts);
      loss_sum = 0;
      logged = 0;
    }
    if (step % o.checkpoint_every == 0) SaveCheckpoint(o, *model, optimizer, step);
  }
  SaveCheckpoint(o, *model, optimizer, step);
  return step;
}

// OUT/model.safetensors (float16 with --half) and OUT/model.json: what a server loads.
void ExportModel(const Options& o, const detr::core::ModelConfig& config, detr::core::Detr& model, int64_t step) {
  model->eval();
  auto weights = detr::core::StateDict(*model);
  if (o.half) {
    for (auto& [name, tensor] : weights) {
      if (tensor.is_floating_point()) tensor = tensor.to(at::kHalf);
    }
  }
  detr::core::SaveSafetensors((fs::path(o.output) / "model.safetensors").string(), weights,
                              {{"step", std::to_string(step)}});
  std::ofstream((fs::path(o.output) / "model.json").string()) << config.ToJsonText() << "\n";
  std::fprintf(stderr, "done at step %lld: %s\n", static_cast<long long>(step),
               (fs::path(o.output) / "model.safetensors").string().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  detr::core::UseFastBlasKernels(argv);  // may re-execute the program: before anything else
  Options o;
  CLI::App app{"detr-train: trains DETR with any attention per site on a COCO-format data set."};
  std::vector<int> crop_size;
  AddOptions(app, o, crop_size);
  CLI11_PARSE(app, argc, argv);
  if (const auto error = CompleteOptions(app, o, crop_size); !error.empty()) {
    std::fprintf(stderr, "detr-train: %s\n", error.c_str());
    return 2;
  }
  try {
    detr::core::ConfigureThreads(o.threads);
    detr::core::CachingCpuAllocator allocator;
    detr::core::ScopedCpuAllocator use_allocator(allocator);
    fs::create_directories(o.output);
    auto config = detr::core::ModelConfig::FromJsonFile(o.model_config);
    const detr::training::DetectionDataset data(o.annotations, o.images);
    if (config.class_names.empty()) config.class_names = data.CategoryNames(config.num_classes);  // into model.json
    if (data.max_category_id() >= config.num_classes) {
      throw std::runtime_error("num_classes " + std::to_string(config.num_classes) + " is too small for category id " +
                               std::to_string(data.max_category_id()));
    }
    int64_t step = 0;
    auto model = MakeModel(o, config, step);
    step = Train(o, config, data, model, step);
    ExportModel(o, config, model, step);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "detr-train: %s\n", detr::core::ErrorMessage(e).c_str());
    return 1;
  }
}
