// Unit tests of channel-name validation (PROTOCOL.md: 1 to 128 characters of
// A-Z a-z 0-9 _ - . :).
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "core/channel_name.hpp"

namespace odin {
namespace {

// Usable at compile time (e.g. to check built-in channel names).
static_assert(core::is_valid_channel_name("BTCUSD"));
static_assert(!core::is_valid_channel_name(""));

TEST(ChannelName, LengthBoundaries) {
  EXPECT_FALSE(core::is_valid_channel_name(""));
  EXPECT_TRUE(core::is_valid_channel_name("a"));
  EXPECT_TRUE(core::is_valid_channel_name(std::string(127, 'x')));
  EXPECT_TRUE(core::is_valid_channel_name(std::string(128, 'x')));
  EXPECT_FALSE(core::is_valid_channel_name(std::string(129, 'x')));
  EXPECT_FALSE(core::is_valid_channel_name(std::string(100'000, 'x')));
  EXPECT_EQ(core::kMaxChannelNameLength, 128u);
}

TEST(ChannelName, EveryAllowedCharacterClass) {
  EXPECT_TRUE(core::is_valid_channel_name("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
  EXPECT_TRUE(core::is_valid_channel_name("abcdefghijklmnopqrstuvwxyz"));
  EXPECT_TRUE(core::is_valid_channel_name("0123456789"));
  for (const char* one : {"_", "-", ".", ":", "A", "Z", "a", "z", "0", "9"})
    EXPECT_TRUE(core::is_valid_channel_name(one)) << one;
  EXPECT_TRUE(core::is_valid_channel_name("price:BTC-USD.spot_v2"));
  EXPECT_TRUE(core::is_valid_channel_name("..::--__"));
}

TEST(ChannelName, ExactlyTheAllowedSetOfAllBytes) {
  for (int c = 0; c < 256; ++c) {
    const bool want = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-' || c == '.' || c == ':';
    const char ch = static_cast<char>(c);
    EXPECT_EQ(core::is_channel_name_char(ch), want) << "byte " << c;
    const std::string name = std::string("ok") + ch + "ok";
    EXPECT_EQ(core::is_valid_channel_name(name), want) << "byte " << c;
    EXPECT_EQ(core::is_valid_channel_name(std::string_view(&ch, 1)), want) << "byte " << c;
  }
}

TEST(ChannelName, ForbiddenCharactersAnywhere) {
  for (std::string_view bad :
       {"a b",          " ab",   "ab ",       "x/y",         "a*",           "*",   "a>",   ">",
        "odin.token.*", "tab\t", "new\nline", "caf\xC3\xA9", "\xE2\x82\xAC", "a,b", "a\"b", "a\\b",
        "{x}",          "a+b",   "a@b",       "a#b"}) {
    EXPECT_FALSE(core::is_valid_channel_name(bad)) << bad;
  }
  EXPECT_FALSE(core::is_valid_channel_name(std::string_view("a\0b", 3))) << "embedded NUL";
  EXPECT_FALSE(core::is_valid_channel_name(std::string_view("\0", 1)));
  std::string long_tail(128, 'x');
  long_tail.back() = '/';
  EXPECT_FALSE(core::is_valid_channel_name(long_tail)) << "the last character is checked too";
}

}  // namespace
}  // namespace odin
