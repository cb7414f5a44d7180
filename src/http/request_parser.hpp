// The HTTP/1.1 request parser the gateway reads every request with (Boost.Beast), configured in
// this one place so that the fuzz target (tests/fuzz/fuzz_http_request.cpp) parses exactly as the
// gateway does.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdint>
#include <optional>

namespace odin {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpRequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// A request line and headers beyond this are refused (413) before they are buffered further.
inline constexpr uint32_t kMaxHttpHeaderBytes = 8 * 1024;
// The only bodies the gateway takes are POST /publish batches.
inline constexpr uint64_t kMaxHttpBodyBytes = 1024 * 1024;

// Starts `parser` afresh for the next request (a Beast parser reads one message only).
inline void start_request_parser(std::optional<HttpRequestParser>& parser) {
  parser.emplace();
  parser->header_limit(kMaxHttpHeaderBytes);
  parser->body_limit(kMaxHttpBodyBytes);
  // Pipelined requests: parse the body as soon as the header is done, without a separate call.
  parser->eager(true);
}

}  // namespace odin
