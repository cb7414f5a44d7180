// POST /publish body parsing (see publish.hpp).
#include "core/publish.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <simdjson.h>

#include <array>
#include <boost/beast/core/string.hpp>

#include "core/channel_name.hpp"
#include "core/json.hpp"

namespace odin::core {

namespace {

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

// The raw text of the value of the `member`-th member of the object starting at body[at]. The
// body was validated by simdjson, so the scan needs no error handling; it stays inside the body
// whatever it holds.
std::string_view raw_member_value(std::string_view body, size_t at, size_t member) {
  size_t i = json::skip_space(body, at + 1);  // past '{'
  for (size_t k = 0; i < body.size() && body[i] == '"'; ++k) {
    i = json::skip_space(body, json::skip_string(body, i));
    i = json::skip_space(body, i + 1);  // past ':'
    const size_t value = i;
    i = json::skip_value(body, i);
    if (k == member) return body.substr(value, i - value);
    i = json::skip_space(body, json::skip_space(body, i) + 1);  // past ','
  }
  return {};
}

// `at` is where the element's raw text begins in `body`.
std::optional<std::string> read_item(simdjson::dom::element element, std::string_view body,
                                     size_t at, PublishBatch& batch, size_t max_data_bytes) {
  simdjson::dom::object object;
  if (element.get(object)) return "each message must be a JSON object";
  IngestItem item;
  simdjson::dom::element channel;
  if (object["channel"].get(channel)) return "missing \"channel\"";
  if (channel.get(item.channel)) return "\"channel\" must be a string";
  if (!is_valid_channel_name(item.channel)) {
    return "invalid channel name (1-128 of A-Z a-z 0-9 _ - . :)";
  }
  simdjson::dom::element type;
  if (object["type"].get(type)) {
    item.type = "message";
  } else if (type.get(item.type)) {
    return "\"type\" must be a string";
  } else if (item.type.empty() || item.type.size() > kMaxTypeLength) {
    return "\"type\" must have 1 to 128 characters";
  }
  // The first "data" member (as object["data"] would find it), by position: its text is passed
  // on as the client wrote it (50000.10 stays 50000.10, "caf\u00e9" keeps its escape).
  size_t member = 0;
  bool found = false;
  for (simdjson::dom::key_value_pair field : object) {
    if (field.key == "data") {
      found = true;
      break;
    }
    ++member;
  }
  if (!found) return "missing \"data\"";
  item.data = raw_member_value(body, at, member);
  if (item.data.size() > max_data_bytes) {
    return fmt::format("\"data\" is {} bytes, more than the {} allowed (WS_MAX_PAYLOAD_BYTES)",
                       item.data.size(), max_data_bytes);
  }
  item.data_is_json = true;
  batch.items.push_back(item);
  return std::nullopt;
}

}  // namespace

std::optional<PublishError> parse_publish_body(std::string_view body, simdjson::dom::parser& parser,
                                               PublishBatch& batch, size_t max_data_bytes) {
  batch.items.clear();
  simdjson::dom::element root;
  if (auto error = parser.parse(body.data(), body.size()).get(root)) {
    return PublishError{std::string("body is not valid JSON: ") + simdjson::error_message(error)};
  }
  size_t at = body.starts_with(kUtf8Bom) ? kUtf8Bom.size() : 0;
  at = json::skip_space(body, at);
  if (root.is_array()) {
    simdjson::dom::array array = root.get_array().value_unsafe();
    if (array.size() == 0) return PublishError{"empty array: nothing to publish"};
    long index = 0;
    at = json::skip_space(body, at + 1);  // past '['
    for (simdjson::dom::element element : array) {
      if (auto problem = read_item(element, body, at, batch, max_data_bytes)) {
        batch.items.clear();
        return PublishError{*problem, index};
      }
      at = json::skip_space(body, json::skip_space(body, json::skip_value(body, at)) + 1);
      ++index;
    }
    return std::nullopt;
  }
  if (auto problem = read_item(root, body, at, batch, max_data_bytes)) {
    batch.items.clear();
    return PublishError{*problem};
  }
  return std::nullopt;
}

bool bearer_token_matches(std::string_view authorization, std::string_view token) {
  constexpr std::string_view kScheme = "Bearer ";
  std::string_view presented;
  if (authorization.size() > kScheme.size() &&
      boost::beast::iequals(authorization.substr(0, kScheme.size()), kScheme)) {
    presented = authorization.substr(kScheme.size());
  }
  // Digests of equal length whatever was presented, so neither the comparison nor an early
  // length check tells a caller how much of the token it guessed.
  std::array<unsigned char, SHA256_DIGEST_LENGTH> want{};
  std::array<unsigned char, SHA256_DIGEST_LENGTH> got{};
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), want.data());
  SHA256(reinterpret_cast<const unsigned char*>(presented.data()), presented.size(), got.data());
  const bool same = CRYPTO_memcmp(want.data(), got.data(), want.size()) == 0;
  return same && !presented.empty() && !token.empty();
}

}  // namespace odin::core
