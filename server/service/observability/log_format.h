// The server's log lines: text for people, or (log_format: json) one JSON
// object per line for log collectors, each line encoded by a JSON encoder so
// that no string in a message (a client's request id, say) can break a line
// or add fields to it.
#pragma once

namespace detr::service {

/// Sets spdlog's default logger's format; call once, early in main.
void ConfigureLogging(bool json);

}  // namespace detr::service
