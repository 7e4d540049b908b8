// Images in, model inputs out: decoding, DETR's evaluation resize and
// ImageNet normalisation (OpenCV + LibTorch; no service code).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>
#include <opencv2/core/mat.hpp>

namespace detr {

/// The official evaluation transform: shorter side to `shortest_edge`, unless
/// that makes the longer side exceed `longest_edge` (then the longer side is
/// `longest_edge`). 0 disables a bound.
struct ResizePolicy {
  int shortest_edge = 800;
  int longest_edge = 1333;
};

/// (height, width) after resizing an image of (height, width), as the
/// official get_size_with_aspect_ratio computes it.
std::pair<int, int> ResizedSize(int height, int width, const ResizePolicy& policy);

/// Decodes an encoded image (JPEG, PNG, BMP, WebP, ...) to 8-bit RGB, upright
/// (Exif orientation applied). JPEGs go straight to libjpeg (jpeg_decode.h),
/// the rest through OpenCV. Throws std::invalid_argument if the bytes are not
/// a decodable image, or are a truncated JPEG.
cv::Mat DecodeImage(const unsigned char* data, std::size_t size);
cv::Mat DecodeImage(const std::vector<unsigned char>& bytes);
/// Reads and decodes an image file to 8-bit RGB. Throws std::invalid_argument.
cv::Mat ReadImage(const std::string& path);

/// RGB uint8 image -> (3, H', W') float32 ImageNet-normalised tensor at the
/// policy's size. Downscaling uses area interpolation (close to PIL's
/// antialiased bilinear that the official transform uses), upscaling bilinear.
at::Tensor ToModelInput(const cv::Mat& rgb, const ResizePolicy& policy);

/// RGB uint8 image -> (3, canvas_height, canvas_width) input: resized to fit
/// inside the canvas (aspect kept), padded with zeros bottom/right, plus its
/// (canvas_height, canvas_width) bool mask, true on the padding. Every image
/// then has the same input shape, so any requests can share a batch.
std::pair<at::Tensor, at::Tensor> ToCanvasInput(const cv::Mat& rgb, int canvas_height, int canvas_width);

/// (height, width) bool mask, true outside the top-left image_height x
/// image_width corner (the padding). Filled by plain loops: preprocessing
/// threads must not start OpenMP teams of their own (see runtime.h's
/// ReleaseIntraOpThreads), which LibTorch's fill kernels would.
at::Tensor PaddingMask(int64_t height, int64_t width, int64_t image_height, int64_t image_width);

/// Pads same-sized or differently sized inputs (3, H, W) into one batch as the
/// official nested_tensor_from_tensor_list does: zeros bottom/right, mask true
/// on padding. Returns pixel_values (B, 3, H, W) and pixel_mask (B, H, W).
std::pair<at::Tensor, at::Tensor> BatchInputs(const std::vector<at::Tensor>& images);

}  // namespace detr
