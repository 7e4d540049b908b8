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
#pragma once

#include <cstdint>
#include <functional>
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

/// A residual block: its convolutions in order (ReLU after each but the last;
/// the last one adds the shortcut, then ReLU) and the optional 1x1
/// downsample on the shortcut.
struct ResidualBlockParams {
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

  /// stem: the 7x7 convolution (then ReLU and 3x3/2 max-pooling); blocks: all
  /// residual blocks of layer1..layer4 in order. Copies the weights, and plans
  /// a small probe input at once, so that a CPU on which oneDNN offers only
  /// unacceptable code throws Unavailable here, not at the first request.
  /// plan_capacity: the most plans kept (least recently used go first); a
  /// server with fixed canvases keeps one per canvas and batch chunk.
  OneDnnResNet(const ConvParams& stem, const std::vector<ResidualBlockParams>& blocks,
               Acceptable acceptable = NotReference, int plan_capacity = kDefaultPlanCapacity);
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

 private:
  // One pass of a batch of 1, 2, 4 or 8 images (batches of other sizes run
  // in such chunks).
  at::Tensor ForwardChunk(const at::Tensor& images) const;

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace detr::core
