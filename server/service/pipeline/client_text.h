// Strings a client sends (model names, request ids, routing keys): bounded on
// the way in, and shortened and escaped wherever they are echoed, so that no
// client can grow a status message past what its peer accepts, bloat the
// server's logs, or forge log lines with control characters.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace detr::service {

/// The longest model name, request id or routing key a request may carry.
constexpr std::size_t kMaxClientStringBytes = 256;

/// A client's string for a status message or a log line: at most 64 bytes
/// of it, bytes outside printable ASCII and quotes and backslashes as \xNN,
/// and "... (N bytes)" when it was cut.
std::string Echo(std::string_view text);

}  // namespace detr::service
