// The HTTP side of the WebSocket opening handshake (RFC 6455 4.2): checking a client's upgrade
// request and computing Sec-WebSocket-Accept. Independent of any HTTP library.
#pragma once

#include <string>
#include <string_view>

namespace odin::ws {

// The parts of the request the checks need; empty views for absent headers.
struct UpgradeRequest {
  std::string_view method;
  unsigned http_version = 11;  // 11 = HTTP/1.1
  std::string_view upgrade;
  std::string_view connection;
  std::string_view key;
  std::string_view version;
};

struct UpgradeVerdict {
  int status;              // 101 acceptable, 400 bad upgrade, 426 unsupported version
  std::string_view error;  // static text for the JSON body; empty when 101
};

// RFC 6455 4.2.1, every 400 reason first, then the version (426: the caller adds
// "Sec-WebSocket-Version: 13" to the response, 4.4).
UpgradeVerdict check_upgrade(const UpgradeRequest& request);

// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), the Sec-WebSocket-Accept value.
std::string accept_key(std::string_view client_key);

// Does the comma-separated header value hold `token` (case-insensitive, whitespace ignored)?
bool header_has_token(std::string_view value, std::string_view token);

}  // namespace odin::ws
