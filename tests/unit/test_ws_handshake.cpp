// Unit tests of the opening handshake checks and Sec-WebSocket-Accept.
#include <gtest/gtest.h>

#include "ws/handshake.hpp"
#include "ws/utf8.hpp"

namespace odin::ws {
namespace {

UpgradeRequest good() {
  return {"GET", 11, "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", "13"};
}

TEST(Handshake, AcceptKeyFromTheRfc) {
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(Handshake, Verdicts) {
  EXPECT_EQ(check_upgrade(good()).status, 101);
  auto r = good();
  r.connection = "keep-alive, Upgrade";
  r.upgrade = "WebSocket";
  EXPECT_EQ(check_upgrade(r).status, 101);
  r = good();
  r.method = "POST";
  EXPECT_EQ(check_upgrade(r).status, 400);
  r = good();
  r.http_version = 10;
  EXPECT_EQ(check_upgrade(r).status, 400);
  r = good();
  r.upgrade = "";
  EXPECT_EQ(check_upgrade(r).status, 400);
  r = good();
  r.upgrade = "h2c";
  EXPECT_EQ(check_upgrade(r).status, 400);
  r = good();
  r.connection = "keep-alive";
  EXPECT_EQ(check_upgrade(r).status, 400);
  r = good();
  r.key = "";
  EXPECT_EQ(check_upgrade(r).status, 400);
  r = good();
  r.key = "short";
  EXPECT_EQ(check_upgrade(r).status, 400);
  r = good();
  r.key = "dGhlIHNhbXBsZSBub25jZQ";
  EXPECT_EQ(check_upgrade(r).status, 400);
  r = good();
  r.version = "";
  EXPECT_EQ(check_upgrade(r).status, 400);
  r = good();
  r.version = "8";
  EXPECT_EQ(check_upgrade(r).status, 426);
  // A bad key is reported before a wrong version.
  r = good();
  r.version = "8";
  r.key = "";
  EXPECT_EQ(check_upgrade(r).status, 400);
}

TEST(Utf8, IncrementalValidator) {
  Utf8Validator v;
  EXPECT_TRUE(v.feed("h\xC3"));
  EXPECT_FALSE(v.complete());
  EXPECT_TRUE(v.feed("\xA9"));
  EXPECT_TRUE(v.complete());
  EXPECT_FALSE(v.feed("\xE0\x80"));  // overlong 3-byte
  v.reset();
  EXPECT_TRUE(v.feed("\xF0\x9F\x98"));
  EXPECT_TRUE(v.feed("\x80"));
  EXPECT_TRUE(v.complete());
  for (const char* bad :
       {"\x80", "\xC1\xBF", "\xED\xBF\xBF", "\xF5\x80\x80\x80", "\xFE", "\xF0\x8F\xBF\xBF"}) {
    Utf8Validator x;
    EXPECT_FALSE(x.feed(bad)) << bad;
    EXPECT_FALSE(is_valid_utf8(bad));
  }
  EXPECT_TRUE(is_valid_utf8("plain ascii, \xE2\x82\xAC, \xF0\x9F\x98\x80"));
}

}  // namespace
}  // namespace odin::ws
