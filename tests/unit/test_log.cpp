// Unit tests of logging: JSON and text line building (escaping, timestamps) and init_logging
// writing real lines to stderr in both formats, honouring the level.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "ops/log.hpp"

namespace odin {
namespace {

using std::chrono::system_clock;

// 2026-11-23T10:00:00.123Z
system_clock::time_point sample_time() {
  return system_clock::time_point(std::chrono::milliseconds(1795428000123LL));
}

std::string json_line(std::string_view msg) {
  std::string out;
  ops::append_json_log_line(out, "2026-11-23T10:00:00.123Z", "info", msg);
  return out;
}

TEST(Log, JsonLineShape) {
  EXPECT_EQ(json_line("started"),
            "{\"ts\":\"2026-11-23T10:00:00.123Z\",\"level\":\"info\",\"msg\":\"started\"}\n");
}

TEST(Log, JsonLineAppendsToWhatIsThere) {
  std::string out = "x";
  ops::append_json_log_line(out, "t", "warn", "m");
  EXPECT_EQ(out, "x{\"ts\":\"t\",\"level\":\"warn\",\"msg\":\"m\"}\n");
}

TEST(Log, JsonEscapesQuotesBackslashesAndControls) {
  const std::string line =
      json_line(std::string_view("a\"b\\c\nd\te\x01"
                                 "f\x1f"
                                 "g\rh",
                                 15));
  EXPECT_NE(line.find(R"("msg":"a\"b\\c\nd\te\u0001f\u001fg\rh")"), std::string::npos) << line;
  // A message can never split the line.
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(Log, JsonEscapesNul) {
  const std::string line = json_line(std::string_view("a\0b", 3));
  EXPECT_NE(line.find(R"("msg":"a\u0000b")"), std::string::npos) << line;
}

TEST(Log, JsonPassesUtf8Through) {
  const std::string msg = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80";
  EXPECT_NE(json_line(msg).find("\"msg\":\"" + msg + "\""), std::string::npos);
}

TEST(Log, Timestamps) {
  std::string ts;
  ops::append_iso_timestamp(ts, sample_time());
  EXPECT_EQ(ts, "2026-11-23T10:00:00.123Z");
  ts.clear();
  ops::append_iso_timestamp(ts, system_clock::time_point{});
  EXPECT_EQ(ts, "1970-01-01T00:00:00.000Z");
  ts.clear();
  ops::append_iso_timestamp(ts, system_clock::time_point(std::chrono::milliseconds(-1)));
  EXPECT_EQ(ts, "1969-12-31T23:59:59.999Z");
  ts.clear();
  // Sub-millisecond parts are cut, not rounded up into the next second.
  ops::append_iso_timestamp(ts, system_clock::time_point(std::chrono::microseconds(1'999'999)));
  EXPECT_EQ(ts, "1970-01-01T00:00:01.999Z");
}

TEST(Log, LineInBothFormats) {
  std::string json;
  ops::append_log_line(json, ops::LogFormat::kJson, sample_time(), "error", "boom \"x\"");
  EXPECT_EQ(
      json,
      "{\"ts\":\"2026-11-23T10:00:00.123Z\",\"level\":\"error\",\"msg\":\"boom \\\"x\\\"\"}\n");
  std::string text;
  ops::append_log_line(text, ops::LogFormat::kText, sample_time(), "info", "listening on :3002");
  EXPECT_EQ(text, "2026-11-23T10:00:00.123Z info listening on :3002\n");
}

TEST(Log, TextKeepsOneLinePerMessage) {
  std::string text;
  ops::append_log_line(text, ops::LogFormat::kText, sample_time(), "warn",
                       std::string_view("a\nb\tc\x01\x7f"
                                        "d \xc3\xa9",
                                        11));
  EXPECT_EQ(text, "2026-11-23T10:00:00.123Z warn a\\nb\\tc\\x01\\x7fd \xc3\xa9\n");
}

// Points stderr at a temporary file for the test's lifetime and reads back what was written.
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    saved_ = dup(STDERR_FILENO);
    file_ = std::tmpfile();
    dup2(fileno(file_), STDERR_FILENO);
  }
  ~StderrCapture() {
    std::fflush(stderr);
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    std::fclose(file_);
  }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

  std::string text() {
    std::fflush(stderr);
    std::string out;
    std::rewind(file_);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), file_)) > 0)
      out.append(buf, n);
    return out;
  }

 private:
  int saved_ = -1;
  std::FILE* file_ = nullptr;
};

TEST(Log, InitLoggingJsonHonoursLevel) {
  StderrCapture capture;
  ops::init_logging(ops::LogLevel::kInfo, ops::LogFormat::kJson);
  spdlog::debug("hidden {}", 1);
  spdlog::info("hello {}", "\"world\"");
  spdlog::warn("careful");
  spdlog::default_logger()->flush();
  const std::string out = capture.text();
  EXPECT_EQ(out.find("hidden"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("level":"info","msg":"hello \"world\""})"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("level":"warn","msg":"careful"})"), std::string::npos) << out;
  ASSERT_TRUE(out.starts_with("{\"ts\":\"")) << out;
  EXPECT_EQ(out[7 + 23], 'Z') << out;  // ts is YYYY-MM-DDTHH:MM:SS.mmmZ
}

TEST(Log, InitLoggingText) {
  StderrCapture capture;
  ops::init_logging(ops::LogLevel::kDebug, ops::LogFormat::kText);
  spdlog::trace("hidden");
  spdlog::debug("detail {}", 7);
  spdlog::error("failed");
  spdlog::default_logger()->flush();
  const std::string out = capture.text();
  EXPECT_EQ(out.find("hidden"), std::string::npos) << out;
  EXPECT_NE(out.find("Z debug detail 7\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Z error failed\n"), std::string::npos) << out;
}

TEST(Log, InitLoggingOffAndWarnFlushes) {
  {
    StderrCapture capture;
    ops::init_logging(ops::LogLevel::kOff, ops::LogFormat::kText);
    spdlog::error("silent");
    spdlog::default_logger()->flush();
    EXPECT_EQ(capture.text(), "");
  }
  {
    StderrCapture capture;
    ops::init_logging(ops::LogLevel::kWarn, ops::LogFormat::kJson);
    spdlog::info("below");
    spdlog::warn("flushed without an explicit flush");
    const std::string out = capture.text();
    EXPECT_EQ(out.find("below"), std::string::npos) << out;
    EXPECT_NE(out.find("flushed without an explicit flush"), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace odin
