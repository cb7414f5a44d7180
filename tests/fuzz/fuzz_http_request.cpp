// Fuzzes the HTTP phase of a connection: the gateway's Beast request parser (configured by the
// same start_request_parser() the gateway uses) fed arbitrary bytes in fuzzer-chosen reads, the
// way Connection::feed_http feeds it (pipelined requests included), and for every complete request
// the pure pieces the router runs on it: path_of, ws::check_upgrade on upgrade_request_of,
// ws::accept_key, query_param and split_channels on `?channels=`.
//
// Input: byte 0 seeds the read sizes (0: one read), the rest is the client's byte stream.
// Invariants beyond "no crash, no leak, no UB":
//  - a complete request's body is within the body limit, and what stays unconsumed between reads
//    (what the gateway buffers) is within the header limit;
//  - check_upgrade answers 101 (no error text), 400 or 426 (with one); on 101 the key is valid,
//    so accept_key gives 28 base64 characters;
//  - split_channels returns only valid, distinct channel names, each a piece of the target;
//  - the requests parsed do not depend on how the stream was split into reads, nor does a
//    refusal, except that Beast may refuse a bad request line later when it came in pieces.
#include <boost/beast/http/error.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "core/channel_name.hpp"
#include "http/request_parser.hpp"
#include "http/request_parts.hpp"
#include "ws/handshake.hpp"

namespace {

namespace beast_http = boost::beast::http;

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

// What the router would read from one request; returns a summary for the split comparison.
std::string route(const odin::http::HttpRequest& request) {
  check(request.body().size() <= odin::http::kMaxHttpBodyBytes, "body over the limit");
  const std::string_view target = request.target();
  std::string summary(request.method_string());
  summary.append(" ").append(target).append(" ");
  const std::string_view path = odin::http::path_of(target);
  check(within(path, target) && path.find('?') == std::string_view::npos, "path_of");

  const odin::ws::UpgradeRequest up = odin::http::upgrade_request_of(request);
  const odin::ws::UpgradeVerdict verdict = odin::ws::check_upgrade(up);
  check(verdict.status == 101 || verdict.status == 400 || verdict.status == 426,
        "check_upgrade status");
  check((verdict.status == 101) == verdict.error.empty(), "check_upgrade error text");
  summary.append(std::to_string(verdict.status));
  if (verdict.status == 101) {
    check(odin::ws::accept_key(up.key).size() == 28, "accept_key length");
  }

  const std::string_view list = odin::http::query_param(target, "channels");
  check(list.empty() || within(list, target), "query_param returns a piece of the target");
  std::vector<std::string_view> channels;
  const bool ok = odin::http::split_channels(list, channels);
  for (size_t i = 0; i < channels.size(); ++i) {
    check(odin::core::is_valid_channel_name(channels[i]), "split_channels: invalid name");
    check(within(channels[i], list), "split_channels: name outside the list");
    for (size_t j = 0; j < i; ++j)
      check(channels[j] != channels[i], "split_channels: duplicate name");
  }
  check(channels.size() <= list.size(), "split_channels: more names than bytes");
  summary.append(ok ? " ok " : " bad ").append(std::to_string(channels.size()));
  summary.append(" ").append(std::to_string(request.body().size())).push_back('\n');
  return summary;
}

struct Outcome {
  std::string requests;  // route() summaries of the complete requests
  std::string error;     // the refusal that stopped parsing; empty while more is awaited
};

// Feeds `stream` as Connection::feed_http does, in reads sized from `seed` (0: one read).
Outcome run(const std::string& stream, uint8_t seed) {
  std::optional<odin::http::HttpRequestParser> parser;
  odin::http::start_request_parser(parser);
  std::string pending;  // as HttpReader::pending: bytes not consumed yet
  std::string log;
  uint32_t state = seed;
  size_t at = 0;
  while (at < stream.size()) {
    size_t n = stream.size() - at;
    if (seed != 0) {
      state = state * 1103515245u + 12345u;
      const uint32_t r = state >> 16;
      n = std::min<size_t>(n, (r & 0x100) ? (r & 0x3FF) + 1 : (r & 0xF) + 1);
    }
    pending.append(stream, at, n);
    at += n;
    size_t offset = 0;
    while (offset < pending.size()) {
      boost::beast::error_code ec;
      const size_t used =
          parser->put(boost::asio::buffer(pending.data() + offset, pending.size() - offset), ec);
      check(used <= pending.size() - offset, "parser used more than it was given");
      offset += used;
      if (ec == beast_http::error::need_more) {
        // As the gateway: waiting with more than a header's worth unconsumed is refused.
        if (pending.size() - offset > odin::http::kMaxHttpHeaderBytes)
          return {log, "400 line too long"};
        break;
      }
      if (ec) {
        // The gateway answers 413 or 400 and closes: nothing more is read.
        const bool too_big =
            ec == beast_http::error::header_limit || ec == beast_http::error::body_limit;
        return {log, std::string(too_big ? "413 " : "400 ") + ec.message()};
      }
      if (!parser->is_done()) continue;
      const odin::http::HttpRequest request = parser->release();
      odin::http::start_request_parser(parser);
      log += route(request);
    }
    pending.erase(0, offset);
    // What the gateway buffers between reads: a partial header (or chunk line), never more.
    check(pending.size() <= odin::http::kMaxHttpHeaderBytes,
          "unconsumed bytes beyond the header limit");
  }
  return {log, {}};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t seed = data[0];
  const std::string stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Outcome whole = run(stream, 0);
  if (seed == 0) return 0;
  const Outcome split = run(stream, seed);
  // Beast checks some syntax at a time that depends on what the buffer holds: a request line it
  // got in pieces only once the header's blank line (or the header limit) arrives, while one read
  // holding it all is checked at once; and a chunk header's size against the body limit before
  // its extension when the read ends inside the extension, while one read holding the whole line
  // first scans an unterminated quoted extension and waits. So a bad request may be refused by
  // one run while the other still waits (bounded: the gateway refuses a wait with more than the
  // header limit unconsumed), and the refusal may differ in kind (400, 413). What must match:
  // the complete requests, in order.
  if (split.requests != whole.requests) {
    std::fprintf(stderr, "one read:\n%s%s\nsplit reads:\n%s%s\n", whole.requests.c_str(),
                 whole.error.c_str(), split.requests.c_str(), split.error.c_str());
    violated("split reads change the requests");
  }
  return 0;
}
