// Fuzzes what a detr.v1 request goes through before a model: the protobuf
// message from the wire, its conversion, validation, and (when valid) the
// decoding and preprocessing of its image.
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "detr/v1/detector.pb.h"
#include "server/service/detr_v1/detector_messages.h"
#include "server/service/pipeline/request_image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  detr::v1::DetectRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;  // gRPC refuses these before us
  const auto input = detr::service::ToDetectInput(std::move(request));
  if (!detr::service::ValidateDetectInput(input, /*max_pixels=*/4'000'000).ok()) return 0;
  const auto rgb = detr::service::DecodeRequestImage(input.image, 4'000'000);
  if (!rgb.ok()) return 0;  // refused with a status; an exception is a finding
  detr::service::PreprocessingConfig preprocessing;
  preprocessing.shortest_edge = 64;
  preprocessing.longest_edge = 96;
  detr::service::PrepareFor(*rgb, preprocessing);
  return 0;
}
