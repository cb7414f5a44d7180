// The body of POST /publish: one {"channel","type","data"} object or an array of them,
// validated as a whole before anything is published.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/ingest.hpp"

namespace simdjson::dom {
class parser;
}

namespace odin::core {

struct PublishBatch {
  // Views into the parser (channel, type) and into the body (data, exactly as the client wrote
  // it: numbers, escapes and spacing are not rewritten).
  std::vector<IngestItem> items;
};

struct PublishError {
  std::string message;
  long index = -1;  // which array element, when the body is an array
};

inline constexpr size_t kMaxTypeLength = 128;

// Parses and validates; on success `batch` holds the items (valid until the parser is reused and
// while `body` lives). An item whose `data` text is longer than `max_data_bytes`
// (WS_MAX_PAYLOAD_BYTES) is refused.
std::optional<PublishError> parse_publish_body(std::string_view body, simdjson::dom::parser& parser,
                                               PublishBatch& batch,
                                               size_t max_data_bytes = SIZE_MAX);

// Whether an Authorization header carries `Bearer <token>` (the scheme in any case). Runs in
// time independent of where the two differ and of the token's length: both sides are hashed
// (SHA-256) and the digests compared with CRYPTO_memcmp. `token` must not be empty.
bool bearer_token_matches(std::string_view authorization, std::string_view token);

}  // namespace odin::core
