#include "server/service/pipeline/request_image.h"

#include <cmath>
#include <string>

#include "server/image/decode.h"
#include "server/image/image_header.h"
#include "server/image/preprocess.h"
#include "server/service/pipeline/client_text.h"

namespace detr::service {
namespace {

absl::Status CheckLength(const char* field, const std::string& value) {
  if (value.size() <= kMaxClientStringBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(std::string(field) + " is " + std::to_string(value.size()) +
                                    " bytes long; the limit is " + std::to_string(kMaxClientStringBytes));
}

}  // namespace

absl::Status ValidateDetectInput(const DetectInput& input, std::int64_t max_pixels) {
  for (const auto& [field, value] : {std::pair<const char*, const std::string&>{"model", input.model},
                                     {"request_id", input.request_id},
                                     {"routing_key", input.routing_key}}) {
    if (auto status = CheckLength(field, value); !status.ok()) return status;
  }
  const float threshold = input.options.score_threshold;
  if (!std::isfinite(threshold) || threshold < 0 || threshold > 1) {
    return absl::InvalidArgumentError("score_threshold must be a number in [0, 1], got " + std::to_string(threshold));
  }
  if (input.options.max_detections < 0) {
    return absl::InvalidArgumentError("max_detections must be >= 0 (0 = all), got " +
                                      std::to_string(input.options.max_detections));
  }
  const auto& image = input.image;
  switch (image.kind) {
    case ImageInput::Kind::kEncoded:
      if (image.bytes.empty()) return absl::InvalidArgumentError("the encoded image is empty (0 bytes)");
      return absl::OkStatus();
    case ImageInput::Kind::kRaw: {
      const std::string size = std::to_string(image.width) + "x" + std::to_string(image.height);
      if (image.width <= 0 || image.height <= 0) {
        return absl::InvalidArgumentError("the raw image has size " + size + "; both must be positive");
      }
      if (image.width > max_pixels || image.height > max_pixels || image.width * image.height > max_pixels) {
        return absl::InvalidArgumentError("the raw image has " + size + " pixels, over the server's limit of " +
                                          std::to_string(max_pixels));
      }
      if (static_cast<std::int64_t>(image.bytes.size()) != image.width * image.height * 3) {
        return absl::InvalidArgumentError("the raw image has " + std::to_string(image.bytes.size()) + " bytes; " +
                                          size + " RGB needs " + std::to_string(image.width * image.height * 3));
      }
      return absl::OkStatus();
    }
    case ImageInput::Kind::kMissing: break;
  }
  return absl::InvalidArgumentError("the request has no image: send an encoded image or raw RGB pixels");
}

absl::StatusOr<cv::Mat> DecodeRequestImage(const ImageInput& image, std::int64_t max_pixels) {
  if (image.kind == ImageInput::Kind::kRaw) {
    const cv::Mat view(static_cast<int>(image.height), static_cast<int>(image.width), CV_8UC3,
                       const_cast<char*>(image.bytes.data()));
    return view.clone();
  }
  const auto* data = reinterpret_cast<const unsigned char*>(image.bytes.data());
  // Only formats whose size can be read before decoding: OpenCV's other
  // decoders (TIFF, PNM, HDR, JPEG 2000, ...) would allocate whatever their
  // header claims, up to a gigapixel, and some of them decode through a
  // temporary file.
  const auto size = image::PeekImageSize(data, image.bytes.size());
  if (!size) {
    return absl::InvalidArgumentError("the encoded image is not JPEG, PNG, BMP or WebP (or its header is cut short)");
  }
  // Each side first: two 32-bit sides overflow their product (found by the
  // image fuzzer).
  if (size->first <= 0 || size->second <= 0 || size->first > max_pixels || size->second > max_pixels ||
      size->first * size->second > max_pixels) {
    return absl::InvalidArgumentError("image header claims " + std::to_string(size->first) + "x" +
                                      std::to_string(size->second) + " pixels, outside the server's limit of " +
                                      std::to_string(max_pixels) + " pixels");
  }
  auto rgb = image::DecodeImage(data, image.bytes.size());
  if (rgb.ok() && static_cast<std::int64_t>(rgb->rows) * rgb->cols > max_pixels) {
    return absl::InvalidArgumentError("image has " + std::to_string(rgb->cols) + "x" + std::to_string(rgb->rows) +
                                      " pixels, over the server's limit of " + std::to_string(max_pixels));
  }
  return rgb;
}

core::PreparedImage PrepareFor(const cv::Mat& rgb, const PreprocessingConfig& preprocessing) {
  if (preprocessing.fixed_canvas()) {
    return image::PrepareOnCanvas(rgb, preprocessing.canvas_height, preprocessing.canvas_width);
  }
  const image::ResizePolicy policy{preprocessing.shortest_edge, preprocessing.longest_edge};
  if (!preprocessing.canvases.empty()) return image::PrepareOnCanvases(rgb, policy, preprocessing.canvases);
  return image::Prepare(rgb, policy);
}

}  // namespace detr::service
