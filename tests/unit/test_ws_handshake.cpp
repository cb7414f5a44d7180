// Unit tests of the opening handshake: RFC 6455 4.2.1 verdicts, in order, and Sec-WebSocket-Accept.
#include <gtest/gtest.h>

#include "ws/handshake.hpp"

namespace odin::ws {
namespace {

UpgradeRequest good() {
  return {"GET", 11, "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", "13"};
}

int status_with(void (*change)(UpgradeRequest&)) {
  UpgradeRequest r = good();
  change(r);
  return check_upgrade(r).status;
}

TEST(Handshake, AcceptKeyFromTheRfc) {
  // RFC 6455 section 1.3's own example.
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  // Another pair, computed independently (Python: base64(sha1(key + GUID))).
  EXPECT_EQ(accept_key("x3JJHMbDL1EzLkh9GBhXDw=="), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

TEST(Handshake, AValidRequestIsAccepted) {
  const UpgradeVerdict v = check_upgrade(good());
  EXPECT_EQ(v.status, 101);
  EXPECT_TRUE(v.error.empty());
  EXPECT_EQ(status_with([](UpgradeRequest& r) { r.http_version = 20; }), 101);  // "or higher"
  EXPECT_EQ(status_with([](UpgradeRequest& r) { r.upgrade = "WebSocket"; }), 101);
  EXPECT_EQ(status_with([](UpgradeRequest& r) { r.upgrade = "h2c, websocket"; }), 101);
  EXPECT_EQ(status_with([](UpgradeRequest& r) { r.connection = "keep-alive, Upgrade"; }), 101);
  EXPECT_EQ(status_with([](UpgradeRequest& r) { r.connection = "UPGRADE"; }), 101);
  EXPECT_EQ(status_with([](UpgradeRequest& r) { r.connection = "Upgrade ,keep-alive"; }), 101);
  EXPECT_EQ(status_with([](UpgradeRequest& r) { r.key = " dGhlIHNhbXBsZSBub25jZQ== "; }), 101);
  EXPECT_EQ(status_with([](UpgradeRequest& r) { r.key = "AAAAAAAAAAAAAAAAAAAAAA=="; }), 101);
  EXPECT_EQ(status_with([](UpgradeRequest& r) { r.key = "+/+/+/+/+/+/+/+/+/+/+w=="; }), 101);
}

TEST(Handshake, BadUpgradesAre400) {
  const auto bad = [](void (*change)(UpgradeRequest&), const char* what) {
    UpgradeRequest r = good();
    change(r);
    const UpgradeVerdict v = check_upgrade(r);
    EXPECT_EQ(v.status, 400) << what;
    EXPECT_FALSE(v.error.empty()) << what;
  };
  bad([](UpgradeRequest& r) { r.method = "POST"; }, "POST");
  bad([](UpgradeRequest& r) { r.method = "get"; }, "lowercase method");
  bad([](UpgradeRequest& r) { r.http_version = 10; }, "HTTP/1.0");
  bad([](UpgradeRequest& r) { r.upgrade = ""; }, "no Upgrade");
  bad([](UpgradeRequest& r) { r.upgrade = "h2c"; }, "other Upgrade");
  bad([](UpgradeRequest& r) { r.upgrade = "websocketx"; }, "not the token");
  bad([](UpgradeRequest& r) { r.connection = ""; }, "no Connection");
  bad([](UpgradeRequest& r) { r.connection = "keep-alive"; }, "no upgrade token");
  bad([](UpgradeRequest& r) { r.connection = "Upgraded"; }, "not the token");
  bad([](UpgradeRequest& r) { r.key = ""; }, "no key");
  bad([](UpgradeRequest& r) { r.key = "short"; }, "short key");
  bad([](UpgradeRequest& r) { r.key = "dGhlIHNhbXBsZSBub25jZQ"; }, "unpadded");
  bad([](UpgradeRequest& r) { r.key = "AAAAAAAAAAAAAAAAAAAAAAAA"; }, "decodes to 18 bytes");
  bad([](UpgradeRequest& r) { r.key = "AAAAAAAAAAAAAAAAAAAAA==="; }, "decodes to 15 bytes");
  bad([](UpgradeRequest& r) { r.key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="; }, "too long");
  bad([](UpgradeRequest& r) { r.key = "AAAAAAAAAAAAAAAA!AAAAA=="; }, "not base64");
  bad([](UpgradeRequest& r) { r.key = "AAAAAAAAAA=AAAAAAAAAAA=="; }, "padding inside");
  bad([](UpgradeRequest& r) { r.version = ""; }, "no version");
}

TEST(Handshake, WrongVersionIs426) {
  for (std::string_view version : {"8", "12", "14", "13, 8", "thirteen"}) {
    UpgradeRequest r = good();
    r.version = version;
    const UpgradeVerdict v = check_upgrade(r);
    EXPECT_EQ(v.status, 426) << version;
    EXPECT_FALSE(v.error.empty());
  }
}

TEST(Handshake, BadRequestIsReportedBeforeTheVersion) {
  EXPECT_EQ(status_with([](UpgradeRequest& r) { r.version = "8", r.key = ""; }), 400);
  EXPECT_EQ(status_with([](UpgradeRequest& r) { r.version = "8", r.upgrade = ""; }), 400);
  EXPECT_EQ(status_with([](UpgradeRequest& r) { r.version = "8", r.method = "PUT"; }), 400);
  EXPECT_EQ(status_with([](UpgradeRequest& r) { r.version = "8", r.http_version = 10; }), 400);
  // The first failing check names the reason.
  UpgradeRequest r = good();
  r.key = "";
  r.connection = "";
  EXPECT_EQ(check_upgrade(r).error, "missing Connection: Upgrade");
  r = good();
  r.key = "";
  EXPECT_EQ(check_upgrade(r).error, "missing Sec-WebSocket-Key");
}

TEST(Handshake, HeaderTokens) {
  EXPECT_TRUE(header_has_token("Upgrade", "upgrade"));
  EXPECT_TRUE(header_has_token("keep-alive,\tUpgrade ", "upgrade"));
  EXPECT_TRUE(header_has_token(",,upgrade,", "upgrade"));
  EXPECT_FALSE(header_has_token("", "upgrade"));
  EXPECT_FALSE(header_has_token("up grade", "upgrade"));
  EXPECT_FALSE(header_has_token("keep-alive", "upgrade"));
}

}  // namespace
}  // namespace odin::ws
