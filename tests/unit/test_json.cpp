// Unit tests of the JSON writers: string escaping (every control character, pass-through of
// UTF-8, and a round trip through a real parser), integers at their limits, decimals.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/json.hpp"

namespace odin {
namespace {

std::string json_quoted(std::string_view s) {
  std::string out;
  core::json::append_string(out, s);
  return out;
}

TEST(JsonString, PlainTextIsOnlyQuoted) {
  EXPECT_EQ(json_quoted(""), "\"\"");
  EXPECT_EQ(json_quoted("BTCUSD"), "\"BTCUSD\"");
  EXPECT_EQ(json_quoted("a/b <tag> 'x' \x7f"), "\"a/b <tag> 'x' \x7f\"");  // no needless escapes
  std::string out = "{\"k\":";
  core::json::append_string(out, "v");
  EXPECT_EQ(out, "{\"k\":\"v\"") << "appends, keeps what was there";
}

TEST(JsonString, EscapesQuoteAndBackslash) {
  EXPECT_EQ(json_quoted("\""), "\"\\\"\"");
  EXPECT_EQ(json_quoted("\\"), "\"\\\\\"");
  EXPECT_EQ(json_quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_quoted("\\\""), "\"\\\\\\\"\"");
}

TEST(JsonString, EveryControlCharacter) {
  const char* const short_forms[0x20] = {
      nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,  // 00-07
      "\\b",   "\\t",   "\\n",   nullptr, "\\f",   "\\r",   nullptr, nullptr,  // 08-0f
  };
  for (int c = 0; c < 0x20; ++c) {
    char expected_escape[8];
    if (short_forms[c]) {
      std::snprintf(expected_escape, sizeof(expected_escape), "%s", short_forms[c]);
    } else {
      std::snprintf(expected_escape, sizeof(expected_escape), "\\u%04x", c);
    }
    const char raw[3] = {'x', static_cast<char>(c), 'y'};
    EXPECT_EQ(json_quoted(std::string_view(raw, 3)), std::string("\"x") + expected_escape + "y\"")
        << "control char " << c;
  }
  EXPECT_EQ(json_quoted(std::string_view("\0", 1)), "\"\\u0000\"");
  EXPECT_EQ(json_quoted("\x1f"), "\"\\u001f\"");
  EXPECT_EQ(json_quoted("\x1b[0m"), "\"\\u001b[0m\"");
}

TEST(JsonString, PassesUtf8Through) {
  const std::string text = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x9A\x80 \xE6\x97\xA5";  // é € 🚀 日
  EXPECT_EQ(json_quoted(text), "\"" + text + "\"");
}

TEST(JsonString, RoundTripsThroughAParser) {
  simdjson::dom::parser parser;
  std::mt19937 rng(5);
  const std::vector<std::string> pieces = {"a",
                                           "Z",
                                           "0",
                                           " ",
                                           "\"",
                                           "\\",
                                           "/",
                                           "\n",
                                           "\t",
                                           "\r",
                                           "\b",
                                           "\f",
                                           std::string(1, '\0'),
                                           "\x01",
                                           "\x1f",
                                           "\x7f",
                                           "\xC3\xA9",
                                           "\xF0\x9F\x9A\x80"};
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    const int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i)
      text += pieces[rng() % pieces.size()];
    std::string doc = "[";
    core::json::append_string(doc, text);
    doc += "]";
    simdjson::dom::element root;
    ASSERT_EQ(parser.parse(doc).get(root), simdjson::SUCCESS) << doc;
    std::string_view back;
    ASSERT_EQ(root.at(0).get(back), simdjson::SUCCESS) << doc;
    ASSERT_EQ(back, text) << doc;
  }
}

std::vector<uint64_t> interesting_uints() {
  std::vector<uint64_t> v = {0,
                             1,
                             9,
                             10,
                             11,
                             99,
                             100,
                             101,
                             999,
                             1000,
                             12345,
                             UINT64_MAX,
                             UINT64_MAX - 1,
                             uint64_t{INT64_MAX},
                             uint64_t{INT64_MAX} + 1};
  uint64_t p = 1;
  for (int k = 0; k <= 19; ++k) {
    v.push_back(p);
    v.push_back(p - 1);
    v.push_back(p + 1);
    if (k < 19) p *= 10;
  }
  for (int k = 0; k < 64; ++k) {
    const uint64_t q = uint64_t{1} << k;
    v.push_back(q);
    v.push_back(q - 1);
    v.push_back(q + 1);
  }
  std::mt19937_64 rng(11);
  for (int i = 0; i < 20'000; ++i)
    v.push_back(rng() >> (rng() % 64));
  return v;
}

TEST(JsonNumbers, WriteUintAndDigits) {
  for (uint64_t value : interesting_uints()) {
    const std::string want = std::to_string(value);
    char buf[core::json::kMaxUintDigits + 4];
    std::memset(buf, '#', sizeof(buf));
    char* end = core::json::write_uint(buf, value);
    ASSERT_EQ(std::string(buf, end), want);
    ASSERT_EQ(end - buf, static_cast<ptrdiff_t>(want.size()));
    ASSERT_EQ(buf[want.size()], '#') << "wrote past the end for " << value;
    ASSERT_EQ(core::json::uint_digits(value), want.size()) << value;
    std::string appended = "x";
    core::json::append_uint(appended, value);
    ASSERT_EQ(appended, "x" + want);
  }
  EXPECT_EQ(core::json::uint_digits(0), 1u);
  EXPECT_EQ(core::json::uint_digits(9), 1u);
  EXPECT_EQ(core::json::uint_digits(10), 2u);
  EXPECT_EQ(core::json::uint_digits(UINT64_MAX), 20u);
  char buf[core::json::kMaxUintDigits];
  EXPECT_EQ(core::json::write_uint(buf, UINT64_MAX), buf + 20);
  EXPECT_EQ(std::string(buf, 20), "18446744073709551615");
}

TEST(JsonNumbers, AppendInt) {
  for (int64_t v :
       {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{9}, int64_t{-9}, int64_t{10}, int64_t{-10},
        int64_t{1696284000000}, int64_t{-42}, std::numeric_limits<int64_t>::max(),
        std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::min() + 1}) {
    std::string out;
    core::json::append_int(out, v);
    EXPECT_EQ(out, std::to_string(v));
  }
}

std::string dbl(double v, int decimals) {
  std::string out;
  core::json::append_double(out, v, decimals);
  return out;
}

TEST(JsonNumbers, AppendDouble) {
  EXPECT_EQ(dbl(1.5, 2), "1.50");
  EXPECT_EQ(dbl(12.345, 1), "12.3");
  EXPECT_EQ(dbl(0.126, 2), "0.13");
  EXPECT_EQ(dbl(-3.25, 1), "-3.2");  // exactly representable tie: round half to even
  EXPECT_EQ(dbl(-7.125, 3), "-7.125");
  EXPECT_EQ(dbl(42.7, 0), "43");
  EXPECT_EQ(dbl(0, 3), "0.000");
  EXPECT_EQ(dbl(-0.0, 1), "0.0") << "no negative zero";
  EXPECT_EQ(dbl(1e15, 1), "1000000000000000.0");
  EXPECT_EQ(dbl(std::nan(""), 2), "0.00");
  EXPECT_EQ(dbl(std::numeric_limits<double>::infinity(), 0), "0");
  EXPECT_EQ(dbl(-std::numeric_limits<double>::infinity(), 1), "0.0");
  EXPECT_EQ(dbl(2.5, -3), "2") << "negative decimals clamp to 0";
  EXPECT_EQ(dbl(0.1, 40), "0.10000000000000001") << "decimals clamp to 17";
  // The largest double still fits (309 digits).
  const std::string big = dbl(std::numeric_limits<double>::max(), 2);
  EXPECT_EQ(big.size(), 309u + 3u);
  EXPECT_EQ(big.substr(0, 6), "179769");
  EXPECT_EQ(dbl(-std::numeric_limits<double>::max(), 17).size(), 1u + 309u + 18u);
}

}  // namespace
}  // namespace odin
