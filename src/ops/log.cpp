// Logging (see log.hpp): a spdlog formatter that writes either JSON lines or text lines with a
// UTC ISO-8601 timestamp.
#include "ops/log.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>

#include "ops/json.hpp"

namespace odin {

namespace {

std::string iso_timestamp(spdlog::log_clock::time_point tp) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch());
  const std::time_t seconds = static_cast<std::time_t>(ms.count() / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &utc);
  return std::string(buf, n) + fmt::format(".{:03}Z", ms.count() % 1000);
}

class LineFormatter final : public spdlog::formatter {
 public:
  explicit LineFormatter(LogFormat format) : format_(format) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string ts = iso_timestamp(msg.time);
    const auto level = spdlog::level::to_string_view(msg.level);
    const std::string_view text(msg.payload.data(), msg.payload.size());
    std::string line;
    if (format_ == LogFormat::kJson) {
      append_json_log_line(line, ts, std::string_view(level.data(), level.size()), text);
    } else {
      line = fmt::format("{} {} {}\n", ts, std::string_view(level.data(), level.size()), text);
    }
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(format_);
  }

 private:
  LogFormat format_;
};

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return spdlog::level::trace;
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
    case LogLevel::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

}  // namespace

void append_json_log_line(std::string& out, std::string_view ts, std::string_view level,
                          std::string_view msg) {
  out.append("{\"ts\":");
  json::append_string(out, ts);
  out.append(",\"level\":");
  json::append_string(out, level);
  out.append(",\"msg\":");
  json::append_string(out, msg);
  out.append("}\n");
}

void init_logging(LogLevel level, LogFormat format) {
  auto logger = std::make_shared<spdlog::logger>("odin-ws",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(std::make_unique<LineFormatter>(format));
  logger->set_level(to_spdlog(level));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace odin
