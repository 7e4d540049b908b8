#include "server/image/image_header.h"

#include <cstdint>
#include <cstring>
#include <cstdlib>

#include "server/image/byte_order.h"

namespace detr::image {
namespace {

using Size = std::optional<std::pair<long long, long long>>;

// BMP's height is signed (negative: rows stored top-down).
std::int32_t SignedLe32(const unsigned char* p) { return static_cast<std::int32_t>(Le32(p)); }

Size Png(const unsigned char* d, std::size_t n) {
  static const unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n < 24 || std::memcmp(d, kSignature, 8) != 0 || std::memcmp(d + 12, "IHDR", 4) != 0) return std::nullopt;
  return std::make_pair<long long, long long>(Be32(d + 16), Be32(d + 20));
}

Size Jpeg(const unsigned char* d, std::size_t n) {
  if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) return std::nullopt;
  std::size_t i = 2;
  while (i + 9 < n) {
    if (d[i] != 0xFF) return std::nullopt;
    const unsigned char marker = d[i + 1];
    if (marker == 0xFF) {
      ++i;
      continue;
    }
    const bool start_of_frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (start_of_frame) return std::make_pair<long long, long long>(Be16(d + i + 7), Be16(d + i + 5));
    i += 2 + Be16(d + i + 2);
  }
  return std::nullopt;
}

Size Bmp(const unsigned char* d, std::size_t n) {
  if (n < 26 || d[0] != 'B' || d[1] != 'M') return std::nullopt;
  return std::make_pair<long long, long long>(std::llabs(SignedLe32(d + 18)), std::llabs(SignedLe32(d + 22)));
}

Size Gif(const unsigned char* d, std::size_t n) {
  if (n < 10 || std::memcmp(d, "GIF8", 4) != 0) return std::nullopt;
  return std::make_pair<long long, long long>(Le16(d + 6), Le16(d + 8));
}

Size Webp(const unsigned char* d, std::size_t n) {
  if (n < 30 || std::memcmp(d, "RIFF", 4) != 0 || std::memcmp(d + 8, "WEBP", 4) != 0) return std::nullopt;
  if (std::memcmp(d + 12, "VP8 ", 4) == 0)
    return std::make_pair<long long, long long>(Le16(d + 26) & 0x3fff, Le16(d + 28) & 0x3fff);
  if (std::memcmp(d + 12, "VP8L", 4) == 0) {
    const std::uint32_t bits = d[21] | (d[22] << 8) | (d[23] << 16) | (std::uint32_t(d[24]) << 24);
    return std::make_pair<long long, long long>((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1);
  }
  if (std::memcmp(d + 12, "VP8X", 4) == 0) {
    return std::make_pair<long long, long long>(1 + (d[24] | (d[25] << 8) | (d[26] << 16)),
                                                1 + (d[27] | (d[28] << 8) | (d[29] << 16)));
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::pair<long long, long long>> PeekImageSize(const unsigned char* data, std::size_t size) {
  for (auto reader : {Png, Jpeg, Bmp, Gif, Webp}) {
    if (auto found = reader(data, size)) return found;
  }
  return std::nullopt;
}

}  // namespace detr::image
