// The direct libjpeg decoder against OpenCV's imdecode, which it replaces for
// JPEG requests: the same pixels, the same Exif orientation handling, and
// errors where imdecode would quietly return grey.
#include <cstdio>  // jpeglib.h needs FILE
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <jpeglib.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "server/image/jpeg_decode.h"
#include "server/image/decode.h"

namespace detr::image {
namespace {

using Bytes = std::vector<unsigned char>;

// Smooth gradients plus noise: enough detail that a decoding difference shows.
cv::Mat TestImage(int height, int width, int channels = 3) {
  cv::Mat image(height, width, CV_8UC(channels));
  std::mt19937 random(7);
  for (int y = 0; y < height; ++y) {
    auto* row = image.ptr<unsigned char>(y);
    for (int x = 0; x < width * channels; ++x)
      row[x] = static_cast<unsigned char>((x * 3 + y * 5 + random() % 40) % 256);
  }
  return image;
}

Bytes Encode(const cv::Mat& bgr, const std::vector<int>& params = {}) {
  Bytes bytes;
  EXPECT_TRUE(cv::imencode(".jpg", bgr, bytes, params));
  return bytes;
}

// What the server decoded JPEGs with before: OpenCV's imdecode, then RGB order.
cv::Mat OpenCvRgb(const Bytes& bytes) {
  cv::Mat bgr = cv::imdecode(bytes, cv::IMREAD_COLOR), rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

void ExpectSamePixels(const cv::Mat& actual, const cv::Mat& expected) {
  ASSERT_EQ(actual.type(), CV_8UC3);
  ASSERT_EQ(actual.size(), expected.size());
  EXPECT_EQ(cv::norm(actual, expected, cv::NORM_INF), 0.0);
}

cv::Mat DecodeOrFail(const Bytes& bytes) {
  auto rgb = DecodeJpegToRgb(bytes.data(), bytes.size());
  EXPECT_TRUE(rgb.ok()) << rgb.status();
  return rgb.ok() ? *rgb : cv::Mat();
}

// An APP1 segment holding an Exif block whose IFD0 has one entry, the
// orientation, in the given byte order, inserted right after SOI.
Bytes WithExifOrientation(const Bytes& jpeg, int orientation, bool big_endian) {
  auto u16 = [&](int v) {
    return big_endian ? Bytes{static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)}
                      : Bytes{static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8)};
  };
  auto u32 = [&](uint32_t v) {
    Bytes b(4);
    for (int i = 0; i < 4; ++i) b[big_endian ? 3 - i : i] = static_cast<unsigned char>(v >> (8 * i));
    return b;
  };
  Bytes exif = {'E', 'x', 'i', 'f', 0, 0};
  auto append = [&](const Bytes& b) { exif.insert(exif.end(), b.begin(), b.end()); };
  append(big_endian ? Bytes{'M', 'M'} : Bytes{'I', 'I'});
  append(u16(42));
  append(u32(8));       // IFD0 right after the header
  append(u16(1));       // one entry
  append(u16(0x0112));  // Orientation
  append(u16(3));       // SHORT
  append(u32(1));
  append(u16(orientation));
  append(u16(0));
  append(u32(0));  // no next IFD
  Bytes segment = {0xFF, 0xE1};
  const int length = static_cast<int>(exif.size()) + 2;
  segment.push_back(static_cast<unsigned char>(length >> 8));
  segment.push_back(static_cast<unsigned char>(length));
  segment.insert(segment.end(), exif.begin(), exif.end());
  Bytes out(jpeg.begin(), jpeg.begin() + 2);
  out.insert(out.end(), segment.begin(), segment.end());
  out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
  return out;
}

// libjpeg itself, for what OpenCV 4.6 cannot write: CMYK, and chroma
// subsampling other than 4:2:0 (luma sampled h x v times the chroma).
Bytes EncodeWithLibjpeg(const cv::Mat& pixels, J_COLOR_SPACE space, int luma_h = 2, int luma_v = 2) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr errors{};
  cinfo.err = jpeg_std_error(&errors);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(pixels.cols);
  cinfo.image_height = static_cast<JDIMENSION>(pixels.rows);
  cinfo.input_components = pixels.channels();
  cinfo.in_color_space = space;
  jpeg_set_defaults(&cinfo);
  cinfo.comp_info[0].h_samp_factor = luma_h;
  cinfo.comp_info[0].v_samp_factor = luma_v;
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<unsigned char*>(pixels.ptr<unsigned char>(static_cast<int>(cinfo.next_scanline)));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  Bytes bytes(buffer, buffer + size);
  free(buffer);  // allocated by libjpeg's memory destination
  return bytes;
}

TEST(JpegDecodeTest, GivesOpenCvsPixelsInRgbOrder) {
  const cv::Mat image = TestImage(123, 77);
  const std::vector<std::vector<int>> encodings = {
      {},                                  // 4:2:0, baseline
      {cv::IMWRITE_JPEG_QUALITY, 100},     // finest quantisation
      {cv::IMWRITE_JPEG_PROGRESSIVE, 1},   // progressive scans
      {cv::IMWRITE_JPEG_RST_INTERVAL, 2},  // restart markers
  };
  for (const auto& params : encodings) {
    const auto bytes = Encode(image, params);
    ASSERT_TRUE(LooksLikeJpeg(bytes.data(), bytes.size()));
    ExpectSamePixels(DecodeOrFail(bytes), OpenCvRgb(bytes));
  }
  cv::Mat rgb;
  cv::cvtColor(image, rgb, cv::COLOR_BGR2RGB);
  for (auto [h, v] : {std::pair{1, 1}, std::pair{2, 1}}) {  // 4:4:4 and 4:2:2
    const auto bytes = EncodeWithLibjpeg(rgb, JCS_RGB, h, v);
    ExpectSamePixels(DecodeOrFail(bytes), OpenCvRgb(bytes));
  }
  cv::Mat grey;
  cv::cvtColor(image, grey, cv::COLOR_BGR2GRAY);
  const auto bytes = Encode(grey);
  ExpectSamePixels(DecodeOrFail(bytes), OpenCvRgb(bytes));  // grey to three equal channels
}

TEST(JpegDecodeTest, TurnsExifOrientedImagesUprightAsOpenCvDoes) {
  const auto plain = Encode(TestImage(40, 64));
  for (bool big_endian : {false, true}) {
    for (int orientation = 1; orientation <= 8; ++orientation) {
      SCOPED_TRACE("orientation " + std::to_string(orientation) + (big_endian ? " MM" : " II"));
      const auto oriented = WithExifOrientation(plain, orientation, big_endian);
      const cv::Mat rgb = DecodeOrFail(oriented);
      EXPECT_EQ(rgb.rows, orientation >= 5 ? 64 : 40);
      ExpectSamePixels(rgb, OpenCvRgb(oriented));
    }
  }
  // An orientation outside 1-8 is ignored, as by OpenCV.
  const auto bogus = WithExifOrientation(plain, 9, false);
  ExpectSamePixels(DecodeOrFail(bogus), OpenCvRgb(plain));
}

TEST(JpegDecodeTest, RefusesTruncatedAndCorruptJpegs) {
  const auto jpeg = Encode(TestImage(64, 64));
  for (std::size_t keep : {jpeg.size() / 2, jpeg.size() - 2, std::size_t{20}}) {
    const Bytes cut(jpeg.begin(), jpeg.begin() + static_cast<std::ptrdiff_t>(keep));
    const auto decoded = DecodeJpegToRgb(cut.data(), cut.size());
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument)
        << "a JPEG cut to " << keep << " of " << jpeg.size() << " bytes";
    EXPECT_NE(decoded.status().message().find("truncated"), absl::string_view::npos) << decoded.status();
  }
  Bytes garbage = {0xFF, 0xD8, 0xFF};
  garbage.resize(600, 0x42);
  EXPECT_EQ(DecodeJpegToRgb(garbage.data(), garbage.size()).status().code(), absl::StatusCode::kInvalidArgument);
  // Bytes after the end-of-image marker (some cameras append data) are fine.
  Bytes trailing = jpeg;
  trailing.insert(trailing.end(), 100, 0x00);
  ExpectSamePixels(DecodeOrFail(trailing), OpenCvRgb(jpeg));
}

TEST(JpegDecodeTest, LeavesCmykToOpenCv) {
  const auto cmyk = EncodeWithLibjpeg(TestImage(24, 32, 4), JCS_CMYK, 1, 1);
  EXPECT_EQ(DecodeJpegToRgb(cmyk.data(), cmyk.size()).status().code(), absl::StatusCode::kUnimplemented);
  const auto rgb = DecodeImage(cmyk);  // the OpenCV fallback
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  ExpectSamePixels(*rgb, OpenCvRgb(cmyk));
}

}  // namespace
}  // namespace detr::image
