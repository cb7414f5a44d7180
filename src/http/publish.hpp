// The body of POST /publish: one {"channel","type","data"} object or an array of them,
// validated as a whole before anything is published.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hub/fanout.hpp"

namespace simdjson::dom {
class parser;
}

namespace odin {

struct PublishBatch {
  std::vector<IngestItem> items;  // views into `parser` and `data`
  std::deque<std::string> data;   // each item's data, re-serialised compactly
};

struct PublishError {
  std::string message;
  long index = -1;  // which array element, when the body is an array
};

inline constexpr size_t kMaxTypeLength = 128;

// Parses and validates; on success `batch` holds the items (valid until the parser is reused).
// An item whose compact `data` is longer than `max_data_bytes` (WS_MAX_PAYLOAD_BYTES) is refused.
std::optional<PublishError> parse_publish_body(std::string_view body, simdjson::dom::parser& parser,
                                               PublishBatch& batch,
                                               size_t max_data_bytes = SIZE_MAX);

}  // namespace odin
