// Logging (see log.hpp): a spdlog formatter that writes either JSON lines or text lines with a
// UTC ISO-8601 timestamp.
#include "ops/log.hpp"

#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <ctime>
#include <memory>

#include "core/json.hpp"

namespace odin::ops {

namespace {

// Short names matching LOG_LEVEL's vocabulary ("warn", not spdlog's "warning").
std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

class LineFormatter final : public spdlog::formatter {
 public:
  explicit LineFormatter(LogFormat format) : format_(format) {}

  // spdlog calls a sink's formatter under the sink's lock, so the member buffer is not shared.
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    line_.clear();
    append_log_line(line_, format_, msg.time, level_name(msg.level),
                    std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(line_.data(), line_.data() + line_.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(format_);
  }

 private:
  LogFormat format_;
  std::string line_;
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
  core::json::append_string(out, ts);
  out.append(",\"level\":");
  core::json::append_string(out, level);
  out.append(",\"msg\":");
  core::json::append_string(out, msg);
  out.append("}\n");
}

namespace {

// Writes the timestamp into `buf` (room for 64) and returns its length; no allocation, since
// the formatter calls this for every line.
size_t format_iso_timestamp(char* buf, std::chrono::system_clock::time_point time) {
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(time.time_since_epoch()).count();
  // Floor division, so times before 1970 still get a milliseconds field in 0..999.
  const int64_t milli = ((ms % 1000) + 1000) % 1000;
  const std::time_t seconds = static_cast<std::time_t>((ms - milli) / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  size_t n = std::strftime(buf, 48, "%Y-%m-%dT%H:%M:%S", &utc);
  buf[n++] = '.';
  buf[n++] = static_cast<char>('0' + milli / 100);
  buf[n++] = static_cast<char>('0' + milli / 10 % 10);
  buf[n++] = static_cast<char>('0' + milli % 10);
  buf[n++] = 'Z';
  return n;
}

}  // namespace

void append_iso_timestamp(std::string& out, std::chrono::system_clock::time_point time) {
  char buf[64];
  out.append(buf, format_iso_timestamp(buf, time));
}

void append_log_line(std::string& out, LogFormat format, std::chrono::system_clock::time_point time,
                     std::string_view level, std::string_view msg) {
  char buf[64];
  const std::string_view ts(buf, format_iso_timestamp(buf, time));
  if (format == LogFormat::kJson) {
    append_json_log_line(out, ts, level, msg);
    return;
  }
  out.append(ts);
  out.push_back(' ');
  out.append(level);
  out.push_back(' ');
  // One message, one line: control characters (e.g. from a client's channel name) are shown
  // escaped so they cannot forge or break lines.
  static constexpr char kHex[] = "0123456789abcdef";
  for (char ch : msg) {
    const auto u = static_cast<unsigned char>(ch);
    if (u >= 0x20 && u != 0x7f) {
      out.push_back(ch);
    } else if (ch == '\n') {
      out.append("\\n");
    } else if (ch == '\r') {
      out.append("\\r");
    } else if (ch == '\t') {
      out.append("\\t");
    } else {
      const char esc[] = {'\\', 'x', kHex[u >> 4], kHex[u & 15]};
      out.append(esc, sizeof(esc));
    }
  }
  out.push_back('\n');
}

void init_logging(LogLevel level, LogFormat format) {
  auto logger = std::make_shared<spdlog::logger>("odin-ws",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(std::make_unique<LineFormatter>(format));
  logger->set_level(to_spdlog(level));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace odin::ops
