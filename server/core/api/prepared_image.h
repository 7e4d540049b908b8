// An image ready for a model, as plain memory: what image preprocessing
// produces and a Detector consumes. No LibTorch, so that preprocessing and the
// service compile without it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace detr::core {

/// An allocator whose elements start uninitialised: buffers that their
/// producer overwrites in full skip std::vector's zero-fill (a 10 MB write
/// per 800x1066 image).
template <typename T>
struct UninitializedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <typename U>
  UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;  // default-initialised: no value for floats
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

using FloatBuffer = std::vector<float, UninitializedAllocator<float>>;

/// ImageNet-normalised RGB planes at the model's input size, the padding
/// mask of that input, and the original image's size (boxes are reported in
/// its pixels).
struct PreparedImage {
  int height = 0;  ///< of the model input (pixels and padding)
  int width = 0;
  FloatBuffer pixels;                 ///< 3 x height x width floats, planes R, G, B
  std::vector<std::uint8_t> padding;  ///< height x width, 1 = padding; empty = no padding
  int original_height = 0;
  int original_width = 0;

  /// Images batch together only when their inputs have one shape: "HxW".
  std::string ShapeKey() const { return std::to_string(height) + "x" + std::to_string(width); }
  std::size_t bytes() const { return pixels.size() * sizeof(float) + padding.size(); }
};

}  // namespace detr::core
