// Unit tests of UTF-8 validation: the incremental validator against a reference decoder over every
// 1-3 byte sequence and many 4-byte ones, split at every point, and the whole-string check.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "ws/utf8.hpp"

namespace odin::ws {
namespace {

// Reference: decode by the definition (RFC 3629 section 3), then reject overlongs, surrogates
// and values above U+10FFFF. Slow and obvious on purpose.
bool reference_valid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<uint8_t>(s[i]);
    int len;
    uint32_t cp;
    if (b < 0x80) {
      len = 1, cp = b;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2, cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, cp = b & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (int k = 1; k < len; ++k) {
      const auto c = static_cast<uint8_t>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len]) return false;       // overlong
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;  // surrogate
    if (cp > 0x10FFFF) return false;                 // beyond Unicode
    i += len;
  }
  return true;
}

bool incremental_valid(std::string_view s) {
  Utf8Validator v;
  return v.feed(s) && v.complete();
}

TEST(Utf8, EveryShortSequenceAgreesWithTheReference) {
  std::string s;
  for (int a = 0; a < 256; ++a) {
    s.assign(1, static_cast<char>(a));
    ASSERT_EQ(incremental_valid(s), reference_valid(s)) << a;
    ASSERT_EQ(is_valid_utf8(s), reference_valid(s)) << a;
    for (int b = 0; b < 256; ++b) {
      s.assign({static_cast<char>(a), static_cast<char>(b)});
      ASSERT_EQ(incremental_valid(s), reference_valid(s)) << a << " " << b;
      if (a < 0xE0 || a > 0xF4) continue;  // 3-byte sequences need a 3- or 4-byte lead
      for (int c = 0; c < 256; ++c) {
        s.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
        const bool ref = reference_valid(s);
        ASSERT_EQ(incremental_valid(s), ref) << a << " " << b << " " << c;
        if (a < 0xF0) continue;
        // Complete the 4-byte case with a few interesting last bytes.
        for (int d : {0x00, 0x7F, 0x80, 0xBF, 0xC0, 0xFF}) {
          s.push_back(static_cast<char>(d));
          ASSERT_EQ(incremental_valid(s), reference_valid(s)) << a << " " << b << " " << c;
          s.pop_back();
        }
      }
    }
  }
}

TEST(Utf8, BoundaryCodePoints) {
  for (std::string_view good :
       {"", "\x7F", "\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80", "\xED\x9F\xBF", "\xEE\x80\x80",
        "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF"}) {
    EXPECT_TRUE(incremental_valid(good)) << testing::PrintToString(std::string(good));
    EXPECT_TRUE(is_valid_utf8(good)) << testing::PrintToString(std::string(good));
  }
  for (std::string_view bad : {"\xC0\x80", "\xC1\xBF",                  // 2-byte overlongs
                               "\xE0\x80\x80", "\xE0\x9F\xBF",          // 3-byte overlongs
                               "\xF0\x80\x80\x80", "\xF0\x8F\xBF\xBF",  // 4-byte overlongs
                               "\xED\xA0\x80", "\xED\xBF\xBF",          // surrogates U+D800, U+DFFF
                               "\xF4\x90\x80\x80", "\xF7\xBF\xBF\xBF",  // above U+10FFFF
                               "\xF8\x88\x80\x80\x80", "\xFE", "\xFF",  // never valid
                               "\x80", "\xBF", "\xC3",         // stray continuation, truncated lead
                               "\xE2\x82", "\xF0\x9F\x98"}) {  // truncated sequences
    EXPECT_FALSE(incremental_valid(bad)) << testing::PrintToString(std::string(bad));
    EXPECT_FALSE(is_valid_utf8(bad)) << testing::PrintToString(std::string(bad));
  }
}

TEST(Utf8, IncrementalStateAcrossChunks) {
  Utf8Validator v;
  EXPECT_TRUE(v.feed("h\xC3"));
  EXPECT_FALSE(v.complete());  // mid-character
  EXPECT_TRUE(v.feed("\xA9"));
  EXPECT_TRUE(v.complete());
  EXPECT_TRUE(v.feed("\xF0"));
  EXPECT_TRUE(v.feed(""));
  EXPECT_TRUE(v.feed("\x9F\x98"));
  EXPECT_FALSE(v.complete());
  EXPECT_TRUE(v.feed("\x80"));
  EXPECT_TRUE(v.complete());
  // A rejection sticks until reset().
  EXPECT_FALSE(v.feed("\xE0\x80"));
  EXPECT_FALSE(v.complete());
  EXPECT_FALSE(v.feed("ok"));
  EXPECT_FALSE(v.feed(""));
  v.reset();
  EXPECT_TRUE(v.complete());
  EXPECT_TRUE(v.feed("ok"));
  EXPECT_LE(sizeof(Utf8Validator), 4u);
}

TEST(Utf8, EverySplitPointGivesTheWholeStringsAnswer) {
  std::mt19937 rng(11);
  const std::string_view pieces[] = {"a",
                                     "json",
                                     "\xC3\xA9",
                                     "\xE2\x82\xAC",
                                     "\xF0\x9F\x98\x80",
                                     "\xF4\x8F\xBF\xBF",
                                     "\xED\x9F\xBF",
                                     "\xFF",
                                     "\x80",
                                     "\xE0\x80",
                                     "\xED\xA0\x80",
                                     "\xF4\x90"};
  for (int round = 0; round < 400; ++round) {
    std::string s;
    const size_t count = rng() % 12;
    for (size_t i = 0; i < count; ++i) {
      // Mostly valid pieces, so that long valid strings get tested too.
      s += pieces[rng() % 4 == 0 ? rng() % std::size(pieces) : rng() % 7];
    }
    const bool whole = reference_valid(s);
    ASSERT_EQ(is_valid_utf8(s), whole) << testing::PrintToString(s);
    for (size_t cut = 0; cut <= s.size(); ++cut) {
      for (size_t cut2 = cut; cut2 <= s.size(); ++cut2) {
        Utf8Validator v;
        const bool ok = v.feed(std::string_view(s).substr(0, cut)) &&
                        v.feed(std::string_view(s).substr(cut, cut2 - cut)) &&
                        v.feed(std::string_view(s).substr(cut2));
        ASSERT_EQ(ok && v.complete(), whole) << testing::PrintToString(s) << " " << cut;
      }
    }
  }
}

TEST(Utf8, LongAsciiRunsAroundAnyBadByte) {
  // The validator skips ASCII a word at a time: a bad byte must be caught at every alignment.
  for (size_t pos = 0; pos < 40; ++pos) {
    for (std::string_view bad : {"\xFF", "\x80", "\xC0\xAF", "\xED\xA0\x80"}) {
      std::string s(40, 'x');
      s.insert(pos, bad);
      EXPECT_FALSE(incremental_valid(s)) << pos;
      EXPECT_FALSE(is_valid_utf8(s)) << pos;
    }
    std::string good(40, 'x');
    good.insert(pos, "\xE2\x82\xAC");
    EXPECT_TRUE(incremental_valid(good)) << pos;
    EXPECT_TRUE(is_valid_utf8(good)) << pos;
  }
  const std::string big(1 << 20, 'j');
  EXPECT_TRUE(incremental_valid(big));
  EXPECT_TRUE(is_valid_utf8(big));
}

}  // namespace
}  // namespace odin::ws
