#include "server/image/draw.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace detr::image {
namespace {

cv::Scalar ClassColour(int class_id) {
  // Spread hues by the golden ratio so that neighbouring ids differ visibly.
  const double hue = std::fmod(class_id * 0.618033988749895, 1.0) * 180.0;
  cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(hue, 220, 255)), rgb;
  cv::cvtColor(hsv, rgb, cv::COLOR_HSV2RGB);
  const auto& c = rgb.at<cv::Vec3b>(0, 0);
  return cv::Scalar(c[0], c[1], c[2]);
}

}  // namespace

void DrawDetections(cv::Mat& rgb, const Detections& detections) {
  const int thickness = std::max(1, std::min(rgb.rows, rgb.cols) / 300);
  const double font_scale = std::max(0.4, std::min(rgb.rows, rgb.cols) / 800.0);
  for (const auto& d : detections) {
    const auto colour = ClassColour(d.class_id);
    const cv::Point top_left(static_cast<int>(d.box[0]), static_cast<int>(d.box[1]));
    const cv::Point bottom_right(static_cast<int>(d.box[2]), static_cast<int>(d.box[3]));
    cv::rectangle(rgb, top_left, bottom_right, colour, thickness);
    char label[96];
    std::snprintf(label, sizeof(label), "%s %.2f", d.class_name.c_str(), d.score);
    int baseline = 0;
    const auto size = cv::getTextSize(label, cv::FONT_HERSHEY_SIMPLEX, font_scale, thickness, &baseline);
    const cv::Point origin(top_left.x, std::max(size.height + 2, top_left.y - 2));
    cv::rectangle(rgb, origin + cv::Point(0, baseline), origin + cv::Point(size.width, -size.height - 2), colour,
                  cv::FILLED);
    cv::putText(rgb, label, origin, cv::FONT_HERSHEY_SIMPLEX, font_scale, cv::Scalar(0, 0, 0), thickness);
  }
}

void WriteImage(const std::string& path, const cv::Mat& rgb) {
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  bool ok = false;
  try {
    ok = cv::imwrite(path, bgr);
  } catch (const cv::Exception& e) {
    throw std::runtime_error(path + ": cannot write image: " + e.what());
  }
  if (!ok) throw std::runtime_error(path + ": cannot write image (unknown extension or unwritable path)");
}

}  // namespace detr::image
