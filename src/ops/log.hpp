// Logging setup on spdlog: JSON lines or plain text on stderr (LOG_FORMAT, LOG_LEVEL), plus the
// pure line-building functions the formatter uses, so tests can check lines without a logger.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "ops/config.hpp"

namespace odin::ops {

// Makes the default spdlog logger write one line per message to stderr in `format`, dropping
// messages below `level`, and flushing at warn and above (so a crash loses no warning).
void init_logging(LogLevel level, LogFormat format);

// One JSON log line: {"ts":"...","level":"...","msg":"..."}\n, each value escaped as a JSON
// string (quotes, backslashes, control characters; UTF-8 passes through).
void append_json_log_line(std::string& out, std::string_view ts, std::string_view level,
                          std::string_view msg);

// UTC ISO-8601 with milliseconds: 2026-11-23T10:00:00.123Z
void append_iso_timestamp(std::string& out, std::chrono::system_clock::time_point time);

// A whole line in `format`: the JSON line above, or "2026-11-23T10:00:00.123Z info message\n".
void append_log_line(std::string& out, LogFormat format, std::chrono::system_clock::time_point time,
                     std::string_view level, std::string_view msg);

}  // namespace odin::ops
