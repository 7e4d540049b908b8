// What a request carries, checked and turned into a model's input, whatever
// the protocol it came in: its strings and options validated, its image
// decoded under the server's pixel limit and prepared for a model.
#pragma once

#include <cstdint>

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <opencv2/core/mat.hpp>

#include "server/core/api/prepared_image.h"
#include "server/service/config/server_config.h"
#include "server/service/pipeline/request.h"

namespace detr::service {

/// OK, or INVALID_ARGUMENT saying what is wrong: strings over 256 bytes, a
/// score threshold outside [0, 1], a negative maximum count, no image, an
/// empty one, raw pixels whose size is not positive, over `max_pixels` or
/// not width x height x 3 bytes.
absl::Status ValidateDetectInput(const DetectInput& input, std::int64_t max_pixels);

/// The image as RGB, refused before a full decode when its header already
/// shows it is over `max_pixels`. INVALID_ARGUMENT for bytes that are not an
/// acceptable image.
absl::StatusOr<cv::Mat> DecodeRequestImage(const ImageInput& image, std::int64_t max_pixels);

/// `rgb` as the model's input under its preprocessing settings. It cannot
/// fail on a decoded image and a validated configuration; what preprocess.h
/// throws on a broken precondition is a bug, caught by the pipeline's net.
core::PreparedImage PrepareFor(const cv::Mat& rgb, const PreprocessingConfig& preprocessing);

}  // namespace detr::service
