// Unit tests of the router's pure request reading: path, query parameter, `?channels=` splitting
// and the upgrade headers; and of the request parser's setup, including how it refuses a bad
// request line that arrives in pieces (found by fuzz_http_request, see docs/fuzzing.md).
#include <gtest/gtest.h>

#include <boost/beast/http/error.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/request_parser.hpp"
#include "http/request_parts.hpp"

namespace odin {
namespace {

using Names = std::vector<std::string_view>;

TEST(RequestParts, PathAndQueryParam) {
  EXPECT_EQ(http::path_of("/ws?channels=a"), "/ws");
  EXPECT_EQ(http::path_of("/ws"), "/ws");
  EXPECT_EQ(http::query_param("/ws?x=1&channels=a,b&y", "channels"), "a,b");
  EXPECT_EQ(http::query_param("/ws?channels", "channels"), "");
  EXPECT_EQ(http::query_param("/ws?channelsx=1", "channels"), "");
  EXPECT_EQ(http::query_param("/ws", "channels"), "");
  EXPECT_EQ(http::query_param("/ws?a=1&channels=first&channels=second", "channels"), "first");
}

TEST(RequestParts, SplitChannels) {
  Names out;
  EXPECT_TRUE(http::split_channels("a,b%2Cc%2ca,d", out));
  EXPECT_EQ(out, (Names{"a", "b", "c", "d"}));
  out.clear();
  EXPECT_TRUE(http::split_channels("", out));
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(http::split_channels("a,", out));  // a trailing separator is tolerated
  EXPECT_EQ(out, (Names{"a"}));
  for (std::string_view bad : {",a", "a,,b", "a%2C%2Cb", "a%20b", "x/y", "a,%2c"}) {
    out.clear();
    EXPECT_FALSE(http::split_channels(bad, out)) << bad;
  }
}

// `count` names c0, c1, ... joined by `separator`, each written `repeat` times in a row.
std::string channel_list(size_t count, std::string_view separator, size_t repeat = 1) {
  std::string list;
  for (size_t i = 0; i < count; ++i) {
    for (size_t k = 0; k < repeat; ++k) {
      if (!list.empty()) list += separator;
      list += "c" + std::to_string(i);
    }
  }
  return list;
}

TEST(RequestParts, SplitChannelsDedupesLongListsInOrder) {
  // Long enough that the reader leaves its short-list scan for its hash set, with duplicates
  // both right after a name and far from it, and all three separators.
  std::string list = channel_list(300, "%2c", 2) + "," + channel_list(300, "%2C");
  Names out;
  ASSERT_TRUE(http::split_channels(list, out, 300));
  ASSERT_EQ(out.size(), 300u);
  Names all;
  ASSERT_TRUE(http::split_channels(list, all));  // no cap: same names
  EXPECT_EQ(out, all);
  for (size_t i = 0; i < out.size(); ++i)
    EXPECT_EQ(out[i], "c" + std::to_string(i));
  // Duplicates never count toward the cap.
  out.clear();
  const std::string same = channel_list(1, ",", 2000);
  ASSERT_TRUE(http::split_channels(same, out, 1));
  EXPECT_EQ(out, (Names{"c0"}));
}

TEST(RequestParts, SplitChannelsStopsOnePastTheCap) {
  // 4,000 distinct names: reading stops at the 101st, so the invalid name at the end is never
  // reached and the caller sees more than its cap of 100.
  const std::string list = channel_list(4000, ",") + ",bad/name";
  Names out;
  ASSERT_TRUE(http::split_channels(list, out, 100));
  ASSERT_EQ(out.size(), 101u);
  EXPECT_EQ(out.front(), "c0");
  EXPECT_EQ(out.back(), "c100");
  // Below the cap the whole list is read, and a bad name anywhere is refused.
  out.clear();
  EXPECT_FALSE(http::split_channels(list, out, 4000));
  out.clear();
  const std::string hundred = channel_list(100, "%2C");
  ASSERT_TRUE(http::split_channels(hundred, out, 100));
  EXPECT_EQ(out.size(), 100u);
}

TEST(RequestParts, UpgradeRequestOf) {
  http::HttpRequest request{boost::beast::http::verb::get, "/ws", 11};
  request.set(boost::beast::http::field::upgrade, "websocket");
  request.set(boost::beast::http::field::connection, "Upgrade");
  request.set(boost::beast::http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  request.set(boost::beast::http::field::sec_websocket_version, "13");
  const ws::UpgradeRequest up = http::upgrade_request_of(request);
  EXPECT_EQ(up.method, "GET");
  EXPECT_EQ(up.http_version, 11u);
  EXPECT_EQ(up.upgrade, "websocket");
  EXPECT_EQ(up.connection, "Upgrade");
  EXPECT_EQ(up.key, "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(up.version, "13");
  EXPECT_EQ(ws::check_upgrade(up).status, 101);
}

// Feeds `reads` one after the other as Connection::feed_http does (unconsumed bytes kept);
// returns the first error, or need_more.
boost::beast::error_code feed(std::initializer_list<std::string_view> reads) {
  std::optional<http::HttpRequestParser> parser;
  http::start_request_parser(parser);
  std::string pending;
  boost::beast::error_code ec;
  for (std::string_view read : reads) {
    pending.append(read);
    const size_t used = parser->put(boost::asio::buffer(pending), ec);
    pending.erase(0, used);
    if (ec != boost::beast::http::error::need_more) return ec;
  }
  return ec;
}

TEST(RequestParser, BadRequestLineInOneReadIsRefusedAtOnce) {
  EXPECT_EQ(feed({"onnection: Upgrade\r\nHost: x\r\n"}), boost::beast::http::error::bad_method);
}

TEST(RequestParser, BadRequestLineInPiecesWaitsForTheEndOfTheHeader) {
  // Once a read ended inside the header, Beast only looks for the blank line (or the limit).
  EXPECT_EQ(feed({"onne", "ction: Upgrade\r\nHost: x\r\n"}), boost::beast::http::error::need_more);
  EXPECT_EQ(feed({"onne", "ction: Upgrade\r\nHost: x\r\n", "\r\n"}),
            boost::beast::http::error::bad_method);
  // ... and the wait is bounded by the header limit.
  EXPECT_EQ(feed({"onne", "ction: Upgrade\r\n", std::string(http::kMaxHttpHeaderBytes, 'x')}),
            boost::beast::http::error::header_limit);
}

TEST(RequestParser, Limits) {
  EXPECT_EQ(feed({"POST /publish HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n"}),
            boost::beast::http::error::body_limit);
  EXPECT_EQ(
      feed({"GET / HTTP/1.1\r\nX: " + std::string(http::kMaxHttpHeaderBytes, 'x') + "\r\n\r\n"}),
      boost::beast::http::error::header_limit);
}

}  // namespace
}  // namespace odin
