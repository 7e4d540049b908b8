// Reading an encoded image's size from its header, without decoding it, so
// that a server can refuse an image over its pixel limit before allocating
// for it (a 1 KB PNG can claim 30000 x 30000 pixels).
#pragma once

#include <cstddef>
#include <optional>
#include <utility>

namespace detr::image {

/// (width, height) from the header of a PNG, JPEG, BMP, GIF or WebP image;
/// nullopt when the format is not one of these or the header is cut short.
std::optional<std::pair<long long, long long>> PeekImageSize(const unsigned char* data, std::size_t size);

}  // namespace detr::image
