// The HTTP/1.1 request parser the gateway reads every request with (Boost.Beast), configured in
// this one place so that the fuzz target (tests/fuzz/fuzz_http_request.cpp) parses exactly as the
// gateway does.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdint>
#include <optional>

namespace odin::http {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpRequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// The defaults of WS_MAX_HEADER_BYTES (a request line and headers beyond it are refused with 431
// before they are buffered further) and WS_MAX_BODY_BYTES (413; the only bodies the gateway takes
// are POST /publish batches).
inline constexpr uint32_t kMaxHttpHeaderBytes = 8 * 1024;
inline constexpr uint64_t kMaxHttpBodyBytes = 1024 * 1024;

// Starts `parser` afresh for the next request (a Beast parser reads one message only).
inline void start_request_parser(std::optional<HttpRequestParser>& parser,
                                 uint32_t header_limit = kMaxHttpHeaderBytes,
                                 uint64_t body_limit = kMaxHttpBodyBytes) {
  parser.emplace();
  parser->header_limit(header_limit);
  parser->body_limit(body_limit);
  // Pipelined requests: parse the body as soon as the header is done, without a separate call.
  parser->eager(true);
}

}  // namespace odin::http
