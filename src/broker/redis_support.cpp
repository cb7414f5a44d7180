// The Redis broker's pure parts (see redis_support.hpp).
#include "broker/redis_support.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "core/json.hpp"

namespace odin::broker {

namespace {

constexpr std::string_view kUrlShape = "expected redis://[[user]:password@]host[:port][/db]";

std::string url_error(std::string_view detail) {
  return std::string(kUrlShape) + " (" + std::string(detail) + ")";
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoding of the user and password parts; nullopt on a broken escape.
std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int hi = hex_value(text[i + 1]);
    const int lo = hex_value(text[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

bool is_ipv6_char(char c) {
  return hex_value(c) >= 0 || c == ':' || c == '.';
}

template <class T>
std::optional<T> parse_number(std::string_view text, uint64_t max) {
  uint64_t v = 0;
  if (text.empty()) return std::nullopt;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || v > max) return std::nullopt;
  return static_cast<T>(v);
}

}  // namespace

std::string RedisUrl::display() const {
  std::string out = "redis://";
  if (!password.empty()) out += username + ":***@";
  const bool ipv6 = host.find(':') != std::string::npos;
  if (ipv6) out += '[';
  out += host;
  if (ipv6) out += ']';
  out += ':';
  out += std::to_string(port);
  out += '/';
  out += std::to_string(db);
  return out;
}

std::variant<RedisUrl, std::string> parse_redis_url(std::string_view text) {
  constexpr std::string_view kScheme = "redis://";
  std::string scheme_part(
      text.substr(0, text.find("://") == std::string_view::npos ? 0 : text.find("://") + 3));
  for (char& c : scheme_part)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme_part == "rediss://") return url_error("rediss:// (TLS) is not supported");
  if (scheme_part != kScheme) return url_error("the scheme must be redis://");
  for (unsigned char c : text) {
    if (c <= 0x20 || c == 0x7f) return url_error("no spaces or control characters");
  }
  std::string_view rest = text.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return url_error("no query or fragment");
  }
  RedisUrl url;
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      auto n = parse_number<uint32_t>(db, 2'147'483'647);
      if (!n) return url_error("the database must be a number from 0 to 2147483647");
      url.db = *n;
    }
  }
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    const size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) return url_error("credentials are [user]:password@");
    auto user = percent_decode(userinfo.substr(0, colon));
    auto password = percent_decode(userinfo.substr(colon + 1));
    if (!user || !password) return url_error("broken %-escape in the credentials");
    if (password->empty()) return url_error("empty password");
    url.username = std::move(*user);
    url.password = std::move(*password);
  }
  std::string_view port_text;
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return url_error("unclosed [ in the IPv6 address");
    url.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) return url_error("':port' after ']'");
    if (!after.empty()) port_text = after.substr(1);
    if (url.host.empty() || !std::all_of(url.host.begin(), url.host.end(), is_ipv6_char)) {
      return url_error("not an IPv6 address between [ ]");
    }
  } else {
    const size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    if (url.host.empty()) return url_error("the host is missing");
    if (!std::all_of(url.host.begin(), url.host.end(), is_host_char)) {
      return url_error("the host must be a name or an address");
    }
  }
  if (authority.ends_with(':') && port_text.empty()) return url_error("empty port");
  if (!port_text.empty()) {
    auto port = parse_number<uint16_t>(port_text, 65535);
    if (!port || *port == 0) return url_error("the port must be a number from 1 to 65535");
    url.port = *port;
  }
  return url;
}

std::string redis_channel_pattern(std::string_view prefix) {
  std::string pattern;
  for (char c : prefix) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') pattern.push_back('\\');
    pattern.push_back(c);
  }
  pattern.push_back('*');
  return pattern;
}

RedisPayloadReader::RedisPayloadReader() : parser_(std::make_unique<simdjson::dom::parser>()) {}

RedisPayloadReader::~RedisPayloadReader() = default;

RedisPayload RedisPayloadReader::read(std::string_view payload) {
  RedisPayload result;
  result.data = payload;
  // Cheap test first: most payloads that are not the object form are never parsed here.
  const size_t first = core::json::skip_space(payload, 0);
  if (first >= payload.size() || payload[first] != '{') return result;
  simdjson::dom::object object;
  if (parser_->parse(payload.data(), payload.size()).get(object)) return result;
  if (object.size() != 2) return result;
  std::string_view type;
  bool has_type = false;
  bool has_data = false;
  for (auto field : object) {
    if (field.key == "type") {
      if (field.value.get(type)) return result;  // not a string
      has_type = true;
    } else if (field.key == "data") {
      has_data = true;
    }
  }
  if (!has_type || !has_data) return result;
  result.type = std::string(type);  // copied: the next parse reuses the parser's buffers
  auto data = raw_member(payload, "data", *parser_);
  if (!data) return RedisPayload{false, {}, payload};
  result.object_form = true;
  result.data = *data;
  return result;
}

std::optional<std::string_view> raw_member(std::string_view t, std::string_view key,
                                           simdjson::dom::parser& parser) {
  size_t i = core::json::skip_space(t, 0);
  if (i >= t.size() || t[i] != '{') return std::nullopt;
  i = core::json::skip_space(t, i + 1);
  while (i < t.size() && t[i] == '"') {
    const size_t key_start = i;
    i = core::json::skip_string(t, i);
    const std::string_view key_token = t.substr(key_start, i - key_start);
    bool match = false;
    if (key_token.find('\\') == std::string_view::npos) {
      match = key_token.size() >= 2 && key_token.substr(1, key_token.size() - 2) == key;
    } else {  // an escaped key ("d\u0061ta"): let the parser unescape it
      std::string_view unescaped;
      match = !parser.parse(key_token.data(), key_token.size()).get(unescaped) && unescaped == key;
    }
    i = core::json::skip_space(t, i);
    if (i >= t.size() || t[i] != ':') return std::nullopt;
    i = core::json::skip_space(t, i + 1);
    const size_t value_start = i;
    i = core::json::skip_value(t, i);
    if (match) return t.substr(value_start, i - value_start);
    i = core::json::skip_space(t, i);
    if (i >= t.size() || t[i] != ',') return std::nullopt;
    i = core::json::skip_space(t, i + 1);
  }
  return std::nullopt;
}

std::string redis_publish_payload(std::string_view type, std::string_view data, bool data_is_json) {
  std::string out;
  out.reserve(data.size() + type.size() + 24);
  out += R"({"type":)";
  core::json::append_string(out, type);
  out += R"(,"data":)";
  if (data_is_json) {
    out += data;
  } else {
    core::json::append_string(out, data);
  }
  out += '}';
  return out;
}

}  // namespace odin::broker
