// Inference of a prepared ResNet body (batch-norms folded into the
// convolutions) through oneDNN directly, the library LibTorch's own CPU
// convolutions run on.
//
// Why not LibTorch's convolutions: ATen always asks oneDNN for its direct
// algorithm. Winograd F(4x4, 3x3) / F(2x2, 3x3) does 2-4x fewer
// multiplications for 3x3 convolutions of stride 1; on an AVX-512 CPU
// oneDNN's implementation ran ResNet-50's in 6.8-9.0 ms instead of 17 ms, with
// output differences of ~2e-6 relative (measured here). The residual add and
// ReLU are fused into the convolutions as post-ops.
//
// Layouts are oneDNN's choice (format_tag::any), because the fast layout
// depends on the instruction set: 16-channel blocks on AVX-512, 8 on AVX2 and
// SSE4.1. Each convolution is asked to read the layout its input already has;
// only where no fast implementation does is the input reordered. A primitive
// whose implementation is oneDNN's reference code (impl_info_str "ref:...",
// 100x slower) is never accepted: the constructor throws Unavailable instead,
// and the caller keeps LibTorch's convolutions.
//
// Int8 (Options::int8): the residual blocks run oneDNN's int8 direct
// convolutions (u8 activations, s8 weights, s32 accumulation): weights
// quantised per output channel (largest |weight| -> 127), every activation
// with one scale from its calibrated range (largest |value| -> 255, or 127
// for the signed downsample outputs). Biases, the output scale, the residual
// sum (re-scaled from the shortcut's scale) and the ReLU are fused into each
// convolution, so activations stay 8-bit from the first block to the last.
// The stem (3 input channels, where rounding costs most and int8 gains least)
// and the max-pooling stay float32; the last block's output is dequantised.
// Why no int8 Winograd: oneDNN has it for AVX-512 only, and its transforms
// round in the int8 domain.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "server/core/api/model_memory.h"

namespace detr::core {

/// One convolution: OIHW weight, bias (folded batch-norm), geometry.
struct ConvParams {
  at::Tensor weight, bias;
  int64_t stride = 1, padding = 0, dilation = 1;
};

/// A residual block (name: its checkpoint prefix, "layer1.0"): its convolutions in order (ReLU after each but the last;
/// the last one adds the shortcut, then ReLU) and the optional 1x1
/// downsample on the shortcut.
struct ResidualBlockParams {
  std::string name;
  std::vector<ConvParams> convs;
  std::optional<ConvParams> downsample;
};

class OneDnnResNet {
 public:
  /// True when the project was built with oneDNN (libdnnl-dev).
  static bool Available();

  /// oneDNN cannot run some layer here with an implementation the body
  /// accepts; what() names the layer and what oneDNN offered.
  class Unavailable : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
  };

  /// Whether an implementation (a primitive's impl_info_str) may run.
  using Acceptable = std::function<bool(const std::string& implementation)>;
  /// Anything but oneDNN's reference code ("ref:any", "ref_...").
  static bool NotReference(const std::string& implementation);

  /// Plans kept when the caller does not size them: a few image shapes.
  static constexpr int kDefaultPlanCapacity = 6;

  /// The largest |value| of each activation the body writes, by name:
  /// "maxpool", each convolution's output ("layer1.0.conv1", ...,
  /// "layer1.0.downsample.0") and each block's output ("layer1.0").
  using ActivationRanges = std::map<std::string, float>;

  struct Options {
    /// plan_capacity: the most plans kept (least recently used go first); a
    /// server with fixed canvases keeps one per canvas and batch chunk.
    int plan_capacity = kDefaultPlanCapacity;
    Acceptable acceptable = NotReference;
    /// Set: the blocks run in int8, with these calibrated ranges (every name
    /// of ActivationNames(), each finite and > 0; std::invalid_argument
    /// otherwise).
    std::optional<ActivationRanges> int8;
  };

  /// stem: the 7x7 convolution (then ReLU and 3x3/2 max-pooling); blocks: all
  /// residual blocks of layer1..layer4 in order. Copies the weights, and plans
  /// a small probe input at once, so that a CPU on which oneDNN offers only
  /// unacceptable code throws Unavailable here, not at the first request.
  OneDnnResNet(const ConvParams& stem, const std::vector<ResidualBlockParams>& blocks, Options options);
  OneDnnResNet(const ConvParams& stem, const std::vector<ResidualBlockParams>& blocks)
      : OneDnnResNet(stem, blocks, Options()) {}
  ~OneDnnResNet();
  OneDnnResNet(const OneDnnResNet&) = delete;
  OneDnnResNet& operator=(const OneDnnResNet&) = delete;

  /// (B, 3, H, W) float image -> (B, C, h, w) contiguous float features,
  /// equal to the LibTorch body's output up to float rounding. Thread-safe;
  /// the plan for each input shape is built once (a few shapes are kept).
  /// Throws Unavailable if this shape has no acceptable plan.
  at::Tensor forward(const at::Tensor& images) const;

  /// The implementation of every primitive in the plan for an input of
  /// `input_sizes` (B, 3, H, W), in execution order, reorders included.
  std::vector<std::string> Implementations(at::IntArrayRef input_sizes) const;

  /// For logs: the instruction set oneDNN runs with and the implementations
  /// of the probe plan (made and dropped by the constructor) with their
  /// counts, e.g. "AVX2: 17x jit:avx2, ...".
  std::string Summary() const;

  /// Its plain weights (weight_bytes), its live plans and their reordered
  /// weights, each counted once.
  ModelMemory Memory() const;

  bool int8() const;

  /// The activations an int8 body needs ranges for, in execution order.
  std::vector<std::string> ActivationNames() const;

  /// A float32 pass over `images` that returns each activation's largest
  /// |value| (calibration; the output itself is dropped).
  ActivationRanges MeasureRanges(const at::Tensor& images) const;

  /// A fingerprint (FNV-1a, 64 bits, hex) of the folded weights and biases:
  /// a calibration names the weights it was measured on.
  std::string WeightsFingerprint() const;

 private:
  // One pass of a batch of 1, 2, 4 or 8 images (batches of other sizes run
  // in such chunks).
  // observe: called with each named activation (float32 bodies only).
  using Observer = std::function<void(const std::string& name, const at::Tensor& values)>;
  at::Tensor ForwardChunk(const at::Tensor& images, const Observer* observe = nullptr) const;

  // Int8 weights, biases and scales from calibrated ranges.
  void Quantise(const ActivationRanges& ranges);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace detr::core
