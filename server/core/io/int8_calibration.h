// The calibration of an int8 backbone: the range of every activation,
// measured on images that are not evaluation data, and the weights it was
// measured on. A JSON file beside the weights, written by detr-calibrate.
#pragma once

#include <map>
#include <stdexcept>
#include <string>

namespace detr::core {

struct Int8Calibration {
  /// OneDnnResNet::WeightsFingerprint() of the weights measured.
  std::string weights_fingerprint;
  /// What the ranges are: "max-abs" (the largest |value| seen).
  std::string method = "max-abs";
  /// The images measured, and where they came from (for people).
  int images = 0;
  std::string source;
  /// Activation name -> range (OneDnnResNet::ActivationRanges).
  std::map<std::string, float> ranges;
};

/// A calibration file that cannot be used: missing, unreadable, truncated,
/// or not a calibration. The message names the file.
class CalibrationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Reads and checks the file's form (every field present and typed, ranges
/// finite and > 0). Whether it fits a model is BuildModel's check (the
/// weights' fingerprint, every activation present). Throws CalibrationError.
Int8Calibration ReadInt8Calibration(const std::string& path);

/// Writes it atomically (a partial file is never left under `path`).
/// Throws CalibrationError.
void WriteInt8Calibration(const std::string& path, const Int8Calibration& calibration);

}  // namespace detr::core
