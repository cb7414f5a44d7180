// Fuzzes the WebSocket upgrade as the router reads it, with the fuzzer's bytes where a client
// chooses them: the query string of `GET /ws?...` and extra header lines, wrapped in an otherwise
// valid upgrade request, so every input reaches the router's pieces instead of stopping at HTTP
// syntax (fuzz_http_request covers that). The request goes through the gateway's own parser
// (start_request_parser), then upgrade_request_of + ws::check_upgrade (+ ws::accept_key on 101),
// query_param and split_channels on `?channels=`, with and without the per-connection cap.
//
// Input: byte 0 is the channel cap (0-255, as WS_MAX_CHANNELS_PER_CONN); the rest up to the first
// '\n' is the query string, what follows it is inserted as header lines.
// Invariants beyond "no crash, no leak, no UB":
//  - split_channels agrees with a plain reference reading (split on ',' / '%2C' / '%2c', every
//    name valid, duplicates dropped, first-seen order), names as views into the list;
//  - with a cap, it returns the reference's first cap + 1 distinct names and true when the list
//    has more than cap distinct names before any invalid one, and otherwise exactly what it
//    returns without the cap: the cap only ever stops reading early;
//  - check_upgrade answers 101 (no error text), 400 or 426 (with one); on 101 accept_key gives
//    28 base64 characters; query_param returns a piece of the target.
#include <algorithm>
#include <boost/beast/http/error.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/channel_name.hpp"
#include "http/request_parser.hpp"
#include "http/request_parts.hpp"
#include "ws/handshake.hpp"

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) violated(what);
}

bool within(std::string_view inner, std::string_view outer) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

struct Reading {
  bool ok = true;
  std::vector<std::string> names;
};

// The `?channels=` rule read plainly, independently of split_channels: names between
// separators, an empty list or one trailing separator allowed, reading stops at cap + 1
// distinct names or at the first invalid one.
Reading reference(std::string_view list, size_t cap) {
  Reading r;
  std::set<std::string, std::less<>> seen;
  std::string name;
  size_t i = 0;
  auto take = [&](bool last) {
    if (last && name.empty()) return false;
    if (!odin::core::is_valid_channel_name(name)) {
      r.ok = false;
      return false;
    }
    if (seen.insert(name).second) r.names.push_back(name);
    name.clear();
    return r.names.size() <= cap;
  };
  while (i < list.size()) {
    if (list[i] == ',') {
      if (!take(false)) return r;
      i += 1;
    } else if (list.substr(i, 3) == "%2C" || list.substr(i, 3) == "%2c") {
      if (!take(false)) return r;
      i += 3;
    } else {
      name.push_back(list[i++]);
    }
  }
  take(true);
  return r;
}

void check_channels(std::string_view list, size_t cap) {
  std::vector<std::string_view> all;
  const bool all_ok = odin::http::split_channels(list, all);
  const Reading want_all = reference(list, odin::core::kNoChannelCap);
  check(all_ok == want_all.ok, "split_channels: validity differs from the reference");
  if (all_ok) {
    check(all.size() == want_all.names.size(), "split_channels: not the reference's names");
    for (size_t i = 0; i < all.size(); ++i) {
      check(all[i] == want_all.names[i], "split_channels: not the reference's names");
      check(within(all[i], list), "split_channels: name outside the list");
    }
  }
  std::vector<std::string_view> capped;
  const bool capped_ok = odin::http::split_channels(list, capped, cap);
  const Reading want = reference(list, cap);
  check(capped_ok == want.ok, "capped split_channels: validity differs from the reference");
  if (!capped_ok) return;
  check(capped.size() <= cap + 1, "capped split_channels: more than cap + 1 names");
  check(capped.size() == want.names.size(), "capped split_channels: not the reference's names");
  for (size_t i = 0; i < capped.size(); ++i)
    check(capped[i] == want.names[i], "capped split_channels: not the reference's names");
  if (capped.size() <= cap) {
    check(all_ok && all == capped, "the cap changed a list within it");
  } else if (all_ok) {
    check(std::equal(capped.begin(), capped.end(), all.begin()),
          "capped names are not the first of the whole list");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t cap = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t newline = rest.find('\n');
  const std::string_view query = rest.substr(0, newline);
  const std::string_view extra =
      newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
  std::string stream = "GET /ws?";
  stream.append(query).append(
      " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n");
  stream.append(extra).append("\r\n");

  std::optional<odin::http::HttpRequestParser> parser;
  odin::http::start_request_parser(parser);
  boost::beast::error_code ec;
  parser->put(boost::asio::buffer(stream), ec);
  if (ec || !parser->is_done()) return 0;  // HTTP refused it: fuzz_http_request's ground
  const odin::http::HttpRequest request = parser->release();
  const std::string_view target = request.target();

  const odin::ws::UpgradeRequest up = odin::http::upgrade_request_of(request);
  const odin::ws::UpgradeVerdict verdict = odin::ws::check_upgrade(up);
  check(verdict.status == 101 || verdict.status == 400 || verdict.status == 426,
        "check_upgrade status");
  check((verdict.status == 101) == verdict.error.empty(), "check_upgrade error text");
  if (verdict.status == 101) {
    check(odin::ws::accept_key(up.key).size() == 28, "accept_key length");
  }
  const std::string_view list = odin::http::query_param(target, "channels");
  check(list.empty() || within(list, target), "query_param returns a piece of the target");
  check_channels(list, cap);
  return 0;
}
