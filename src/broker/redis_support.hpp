// The Redis broker's pure parts, free of hiredis so they can be unit-tested without a server:
// REDIS_URL parsing, the PSUBSCRIBE pattern for WS_SUBJECT_PREFIX, and the payload convention
// (a JSON object whose only keys are "type" and "data" carries both; anything else is the data
// of a "message").
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace simdjson::dom {
class parser;
}

namespace odin::broker {

inline constexpr uint16_t kRedisDefaultPort = 6379;

struct RedisUrl {
  std::string host;  // a name or an IPv4 address; an IPv6 address without its brackets
  uint16_t port = kRedisDefaultPort;
  std::string username;  // empty: AUTH <password> (the default user)
  std::string password;  // empty: no AUTH
  uint32_t db = 0;
  // The URL for logs: the password is never shown, only whether there is one.
  std::string display() const;
};

// Parses redis://[[user]:password@]host[:port][/db]; user and password may be %-encoded.
// Returns the URL or a description of what was expected, which never contains the input
// (it may hold a password).
std::variant<RedisUrl, std::string> parse_redis_url(std::string_view text);

// The PSUBSCRIBE pattern for every channel under `prefix`: the prefix with Redis' glob
// characters (* ? [ ] \) escaped, then `*`.
std::string redis_channel_pattern(std::string_view prefix);

// A payload read under the convention. `data` views the payload (or is the payload).
struct RedisPayload {
  bool object_form = false;  // {"type":"...","data":...} and nothing else
  std::string type;          // object form only: the unescaped type
  std::string_view data;     // object form: the raw JSON text of "data"; otherwise the payload
};

// Reads payloads; keeps a simdjson parser between calls (one per intake thread).
class RedisPayloadReader {
 public:
  RedisPayloadReader();
  ~RedisPayloadReader();
  RedisPayloadReader(const RedisPayloadReader&) = delete;
  RedisPayloadReader& operator=(const RedisPayloadReader&) = delete;

  RedisPayload read(std::string_view payload);

 private:
  std::unique_ptr<simdjson::dom::parser> parser_;
};

// The object form POST /publish sends: {"type":<type>,"data":<data>}, where data is embedded
// as it is when it is JSON and as a JSON string otherwise. `type` and `data` are valid UTF-8.
std::string redis_publish_payload(std::string_view type, std::string_view data, bool data_is_json);

// The start of the raw text of the top-level member named `key` of a JSON object already
// known to be valid, and its length; nullopt when there is no such member. Exposed for tests.
std::optional<std::string_view> raw_member(std::string_view object_json, std::string_view key,
                                           simdjson::dom::parser& parser);

}  // namespace odin::broker
