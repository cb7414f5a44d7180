// Opening handshake checks (see handshake.hpp).
#include "ws/handshake.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cctype>

namespace odin::ws {

namespace {
constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
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

// A base64 string that decodes to exactly 16 bytes (4.2.1 item 5): 24 characters, "==" end.
bool is_valid_key(std::string_view key) {
  key = trim(key);
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  for (size_t i = 0; i < 22; ++i) {
    const char c = key[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/')) return false;
  }
  // The last character before "==" carries 2 bits: the low 4 bits of its value must be 0.
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  return (kAlphabet.find(key[21]) & 0x0F) == 0;
}
}  // namespace

bool header_has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

UpgradeVerdict check_upgrade(const UpgradeRequest& r) {
  if (r.method != "GET") return {400, "WebSocket upgrade needs GET"};
  if (r.http_version < 11) return {400, "WebSocket upgrade needs HTTP/1.1"};
  if (!header_has_token(r.upgrade, "websocket")) return {400, "missing Upgrade: websocket"};
  if (!header_has_token(r.connection, "upgrade")) return {400, "missing Connection: Upgrade"};
  if (r.key.empty()) return {400, "missing Sec-WebSocket-Key"};
  if (!is_valid_key(r.key)) return {400, "invalid Sec-WebSocket-Key"};
  if (r.version.empty()) return {400, "missing Sec-WebSocket-Version"};
  if (trim(r.version) != "13") return {426, "unsupported Sec-WebSocket-Version (13 only)"};
  return {101, {}};
}

std::string accept_key(std::string_view client_key) {
  std::string input(trim(client_key));
  input.append(kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<const char*>(encoded), static_cast<size_t>(n));
}

}  // namespace odin::ws
