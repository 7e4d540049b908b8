#include "server/service/observability/log_format.h"

#include <ctime>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/formatter.h>
#include <spdlog/spdlog.h>

namespace detr::service {
namespace {

// {"time":"2026-12-02T01:39:17.123Z","level":"info","message":"..."}
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& message, spdlog::memory_buf_t& out) override {
    const auto since_epoch = message.time.time_since_epoch();
    const std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count() % 1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char date_time[32];
    std::strftime(date_time, sizeof date_time, "%Y-%m-%dT%H:%M:%S", &utc);
    char fraction[8];
    std::snprintf(fraction, sizeof fraction, ".%03dZ", static_cast<int>(millis));
    const std::string time = std::string(date_time) + fraction;
    const auto level = spdlog::level::to_string_view(message.level);
    const nlohmann::json line = {{"time", time},
                                 {"level", std::string(level.data(), level.size())},
                                 {"message", std::string(message.payload.data(), message.payload.size())}};
    // Bytes that are not UTF-8 become U+FFFD instead of making the line invalid.
    const auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out.append(text.data(), text.data() + text.size());
    out.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

}  // namespace

void ConfigureLogging(bool json) {
  if (json) {
    spdlog::set_formatter(std::make_unique<JsonFormatter>());
  } else {
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
}

}  // namespace detr::service
