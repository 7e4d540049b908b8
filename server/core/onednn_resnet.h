// Inference of a prepared ResNet body (batch-norms folded into the
// convolutions) through oneDNN directly, the library LibTorch's own CPU
// convolutions run on.
//
// Why not LibTorch's convolutions: ATen always asks oneDNN for its direct
// algorithm, which already runs at this CPU's fp32 peak (measured: 225-235
// GFLOP/s on every 3x3 convolution of ResNet-50, sgemm 208). Winograd
// F(4x4, 3x3) does 4x fewer multiplications for 3x3 convolutions of stride 1;
// oneDNN's implementation ran the same convolutions in 6.8-9.0 ms instead of
// 17 ms, with output differences of ~2e-6 relative (measured here). It needs
// oneDNN's blocked layout (nChw16c), so the whole body runs in that layout,
// with the residual add and ReLU fused into the convolutions as post-ops, and
// converts back to NCHW once at the end.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/Tensor.h>

namespace detr {

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

  /// stem: the 7x7 convolution (then ReLU and 3x3/2 max-pooling); blocks: all
  /// residual blocks of layer1..layer4 in order. Copies the weights.
  OneDnnResNet(const ConvParams& stem, const std::vector<ResidualBlockParams>& blocks);
  ~OneDnnResNet();
  OneDnnResNet(const OneDnnResNet&) = delete;
  OneDnnResNet& operator=(const OneDnnResNet&) = delete;

  /// (B, 3, H, W) float image -> (B, C, h, w) contiguous float features,
  /// equal to the LibTorch body's output up to float rounding. Thread-safe;
  /// the plan for each input shape is built once (a few shapes are kept).
  at::Tensor forward(const at::Tensor& images) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace detr
