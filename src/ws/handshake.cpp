// Opening handshake checks (see handshake.hpp). Section numbers refer to RFC 6455.
#include "ws/handshake.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace odin::ws {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

// 4.2.1 item 5: base64 that decodes to exactly 16 bytes, which is 22 characters then "==".
// Non-zero bits in the last character's unused low 4 bits are tolerated, as common decoders do
// (RFC 4648 3.5 lets a decoder choose); the key is only ever hashed.
bool is_valid_key(std::string_view key) {
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  for (size_t i = 0; i < 22; ++i) {
    if (!is_base64_char(key[i])) return false;
  }
  return true;
}

}  // namespace

bool header_has_token(std::string_view value, std::string_view token) {
  while (true) {
    const size_t comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) return false;
    value.remove_prefix(comma + 1);
  }
}

UpgradeVerdict check_upgrade(const UpgradeRequest& r) {
  if (r.method != "GET") return {400, "WebSocket upgrade needs GET"};  // methods are case-sensitive
  if (r.http_version < 11) return {400, "WebSocket upgrade needs HTTP/1.1"};
  if (!header_has_token(r.upgrade, "websocket")) return {400, "missing Upgrade: websocket"};
  if (!header_has_token(r.connection, "upgrade")) return {400, "missing Connection: Upgrade"};
  const std::string_view key = trim(r.key);
  if (key.empty()) return {400, "missing Sec-WebSocket-Key"};
  if (!is_valid_key(key)) return {400, "invalid Sec-WebSocket-Key"};
  const std::string_view version = trim(r.version);
  if (version.empty()) return {400, "missing Sec-WebSocket-Version"};
  if (version != "13") return {426, "unsupported Sec-WebSocket-Version, 13 only"};
  return {101, {}};
}

std::string accept_key(std::string_view client_key) {
  std::string input;
  const std::string_view key = trim(client_key);
  input.reserve(key.size() + kGuid.size());
  input.append(key);
  input.append(kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];  // + the NUL it writes
  const int n = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<const char*>(encoded), static_cast<size_t>(n));
}

}  // namespace odin::ws
