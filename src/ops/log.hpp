// Logging setup on spdlog: JSON lines or plain text on stderr (LOG_FORMAT, LOG_LEVEL).
#pragma once

#include <string>
#include <string_view>

#include "ops/config.hpp"

namespace odin {

void init_logging(LogLevel level, LogFormat format);

// One JSON log line: {"ts":"...","level":"...","msg":"..."}\n
void append_json_log_line(std::string& out, std::string_view ts, std::string_view level,
                          std::string_view msg);

}  // namespace odin
