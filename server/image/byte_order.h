// Unsigned integers read from image headers, in either byte order (PNG and
// JPEG store big-endian, BMP, GIF and WebP little-endian, Exif either).
#pragma once

#include <cstdint>

namespace detr::image {

inline std::uint32_t Be16(const unsigned char* p) { return (std::uint32_t(p[0]) << 8) | p[1]; }
inline std::uint32_t Be32(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
}
inline std::uint32_t Le16(const unsigned char* p) { return p[0] | (std::uint32_t(p[1]) << 8); }
inline std::uint32_t Le32(const unsigned char* p) {
  return p[0] | (std::uint32_t(p[1]) << 8) | (std::uint32_t(p[2]) << 16) | (std::uint32_t(p[3]) << 24);
}

}  // namespace detr::image
