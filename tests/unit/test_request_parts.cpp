// Unit tests of the router's pure request reading: path, query parameter, `?channels=` splitting
// and the upgrade headers.
#include <gtest/gtest.h>

#include <string_view>
#include <vector>

#include "http/request_parts.hpp"

namespace odin {
namespace {

using Names = std::vector<std::string_view>;

TEST(RequestParts, PathAndQueryParam) {
  EXPECT_EQ(path_of("/ws?channels=a"), "/ws");
  EXPECT_EQ(path_of("/ws"), "/ws");
  EXPECT_EQ(query_param("/ws?x=1&channels=a,b&y", "channels"), "a,b");
  EXPECT_EQ(query_param("/ws?channels", "channels"), "");
  EXPECT_EQ(query_param("/ws?channelsx=1", "channels"), "");
  EXPECT_EQ(query_param("/ws", "channels"), "");
  EXPECT_EQ(query_param("/ws?a=1&channels=first&channels=second", "channels"), "first");
}

TEST(RequestParts, SplitChannels) {
  Names out;
  EXPECT_TRUE(split_channels("a,b%2Cc%2ca,d", out));
  EXPECT_EQ(out, (Names{"a", "b", "c", "d"}));
  out.clear();
  EXPECT_TRUE(split_channels("", out));
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(split_channels("a,", out));  // a trailing separator is tolerated
  EXPECT_EQ(out, (Names{"a"}));
  for (std::string_view bad : {",a", "a,,b", "a%2C%2Cb", "a%20b", "x/y", "a,%2c"}) {
    out.clear();
    EXPECT_FALSE(split_channels(bad, out)) << bad;
  }
}

TEST(RequestParts, UpgradeRequestOf) {
  HttpRequest request{boost::beast::http::verb::get, "/ws", 11};
  request.set(boost::beast::http::field::upgrade, "websocket");
  request.set(boost::beast::http::field::connection, "Upgrade");
  request.set(boost::beast::http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  request.set(boost::beast::http::field::sec_websocket_version, "13");
  const ws::UpgradeRequest up = upgrade_request_of(request);
  EXPECT_EQ(up.method, "GET");
  EXPECT_EQ(up.http_version, 11u);
  EXPECT_EQ(up.upgrade, "websocket");
  EXPECT_EQ(up.connection, "Upgrade");
  EXPECT_EQ(up.key, "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(up.version, "13");
  EXPECT_EQ(ws::check_upgrade(up).status, 101);
}

}  // namespace
}  // namespace odin
