#include "server/image/jpeg_decode.h"

#include <algorithm>
#include <csetjmp>
#include <cstdint>
#include <cstdio>  // jpeglib.h needs FILE
#include <cstring>
#include <string>

#include <jerror.h>
#include <jpeglib.h>
#include <opencv2/core.hpp>

#include "server/image/byte_order.h"

namespace detr::image {
namespace {

// libjpeg reports errors through a callback that must not return; the
// documented way out is longjmp back to the caller's setjmp. The message is
// kept here and turned into a status once outside libjpeg.
struct ErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

[[noreturn]] void ExitOnError(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<ErrorManager*>(cinfo->err);
  errors->base.format_message(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

// Warnings are ignored (as OpenCV and PIL ignore them), except running out of
// data: libjpeg then inserts a fake end-of-image and "succeeds" with grey in
// place of the missing rows, which no caller should mistake for the image.
void EmitMessage(j_common_ptr cinfo, int level) {
  auto* errors = reinterpret_cast<ErrorManager*>(cinfo->err);
  if (level == -1 && errors->base.msg_code == JWRN_JPEG_EOF) {
    errors->truncated = true;
    ExitOnError(cinfo);
  }
}

// Destroys the decompressor however the decode ends.
struct Decompressor {
  jpeg_decompress_struct cinfo{};
  ErrorManager errors{};
  Decompressor() {
    cinfo.err = jpeg_std_error(&errors.base);
    errors.base.error_exit = ExitOnError;
    errors.base.emit_message = EmitMessage;
    jpeg_create_decompress(&cinfo);
  }
  ~Decompressor() { jpeg_destroy_decompress(&cinfo); }
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;
};

constexpr int kOrientationAsStored = 1;

// Tag 0x0112 (Orientation) of IFD0 in an APP1 "Exif\0\0" payload.
int ExifOrientation(const unsigned char* data, std::size_t size) {
  constexpr unsigned char kExif[6] = {'E', 'x', 'i', 'f', 0, 0};
  if (size < 6 + 8 || std::memcmp(data, kExif, 6) != 0) return kOrientationAsStored;
  const unsigned char* tiff = data + 6;
  const std::size_t tiff_size = size - 6;
  const bool big_endian = tiff[0] == 'M' && tiff[1] == 'M';
  if (!big_endian && !(tiff[0] == 'I' && tiff[1] == 'I')) return kOrientationAsStored;
  const auto u16 = [big_endian](const unsigned char* p) { return big_endian ? Be16(p) : Le16(p); };
  const std::size_t ifd = big_endian ? Be32(tiff + 4) : Le32(tiff + 4);
  if (ifd + 2 > tiff_size) return kOrientationAsStored;
  const std::size_t entries = u16(tiff + ifd);
  for (std::size_t i = 0; i < entries; ++i) {
    const std::size_t entry = ifd + 2 + 12 * i;
    if (entry + 12 > tiff_size) break;
    if (u16(tiff + entry) != 0x0112) continue;
    const int value = static_cast<int>(u16(tiff + entry + 8));  // a SHORT, left-aligned
    return value >= 1 && value <= 8 ? value : kOrientationAsStored;
  }
  return kOrientationAsStored;
}

int ExifOrientation(const jpeg_decompress_struct& cinfo) {
  for (auto* marker = cinfo.marker_list; marker != nullptr; marker = marker->next) {
    if (marker->marker == JPEG_APP0 + 1) {
      const int orientation = ExifOrientation(marker->data, marker->data_length);
      if (orientation != kOrientationAsStored) return orientation;
    }
  }
  return kOrientationAsStored;
}

// Turns the stored pixels upright, exactly as OpenCV's imdecode does for the
// eight Exif orientations (TIFF 6.0: where row 0 and column 0 are seen).
cv::Mat Upright(cv::Mat image, int orientation) {
  if (orientation >= 5) cv::transpose(image, image);
  switch (orientation) {
    case 2:
    case 6: cv::flip(image, image, 1); break;
    case 3:
    case 7: cv::flip(image, image, -1); break;
    case 4:
    case 8: cv::flip(image, image, 0); break;
    default: break;
  }
  return image;
}

bool ConvertibleToRgb(J_COLOR_SPACE space) { return space == JCS_GRAYSCALE || space == JCS_YCbCr || space == JCS_RGB; }

// The libjpeg calls, between one setjmp and the longjmps that errors make
// back to it. Nothing here owns a resource, so skipping the rest of the
// function on an error leaks nothing; `rgb` is the caller's.
bool Decode(Decompressor& decompressor, const unsigned char* data, std::size_t size, cv::Mat& rgb, int& orientation) {
  auto& cinfo = decompressor.cinfo;
  if (setjmp(decompressor.errors.jump) != 0) return false;
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  if (!ConvertibleToRgb(cinfo.jpeg_color_space)) return true;  // rgb stays empty: not ours to decode
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  rgb.create(static_cast<int>(cinfo.output_height), static_cast<int>(cinfo.output_width), CV_8UC3);
  constexpr int kRowsPerCall = 16;  // at least libjpeg's rec_outbuf_height
  JSAMPROW rows[kRowsPerCall];
  while (cinfo.output_scanline < cinfo.output_height) {
    const int count = static_cast<int>(std::min<JDIMENSION>(kRowsPerCall, cinfo.output_height - cinfo.output_scanline));
    for (int i = 0; i < count; ++i) rows[i] = rgb.ptr<unsigned char>(static_cast<int>(cinfo.output_scanline) + i);
    jpeg_read_scanlines(&cinfo, rows, static_cast<JDIMENSION>(count));
  }
  orientation = ExifOrientation(cinfo);
  jpeg_finish_decompress(&cinfo);
  return true;
}

}  // namespace

bool LooksLikeJpeg(const unsigned char* data, std::size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

absl::StatusOr<cv::Mat> DecodeJpegToRgb(const unsigned char* data, std::size_t size) {
  Decompressor decompressor;
  cv::Mat rgb;
  int orientation = kOrientationAsStored;
  if (!Decode(decompressor, data, size, rgb, orientation)) {
    const std::string message = decompressor.errors.message;
    if (decompressor.errors.truncated) return absl::InvalidArgumentError("JPEG is truncated (" + message + ")");
    return absl::InvalidArgumentError("JPEG cannot be decoded: " + message);
  }
  if (rgb.empty()) return absl::UnimplementedError("the JPEG's colour space has no direct conversion to RGB");
  return Upright(std::move(rgb), orientation);
}

}  // namespace detr::image
