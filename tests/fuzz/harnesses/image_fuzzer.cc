// Fuzzes what a request's encoded image goes through: the header peek that
// refuses oversized images before decoding, the decoders (libjpeg-turbo
// directly, OpenCV for the rest), and preprocessing of what decodes.
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "server/image/image_header.h"
#include "server/service/pipeline/request_image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  detr::image::PeekImageSize(data, size);
  detr::service::ImageInput image;
  image.kind = detr::service::ImageInput::Kind::kEncoded;
  image.bytes.assign(reinterpret_cast<const char*>(data), size);
  // The pixel limit keeps a header's claim from allocating gigabytes. Not an
  // acceptable image: refused with a status, as it should be; an exception
  // anywhere here is a finding.
  const auto rgb = detr::service::DecodeRequestImage(image, /*max_pixels=*/4'000'000);
  if (!rgb.ok()) return 0;
  detr::service::PreprocessingConfig resize;
  resize.shortest_edge = 64;
  resize.longest_edge = 96;
  detr::service::PrepareFor(*rgb, resize);
  detr::service::PreprocessingConfig canvas;
  canvas.canvas_height = 40;
  canvas.canvas_width = 56;
  detr::service::PrepareFor(*rgb, canvas);
  return 0;
}
