// POST /publish body parsing (see publish.hpp).
#include "http/publish.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include "hub/channel_name.hpp"

namespace odin {

namespace {

std::optional<std::string> read_item(simdjson::dom::element element, PublishBatch& batch,
                                     size_t max_data_bytes) {
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
  simdjson::dom::element data;
  if (object["data"].get(data)) return "missing \"data\"";
  batch.data.push_back(simdjson::minify(data));
  if (batch.data.back().size() > max_data_bytes) {
    return fmt::format("\"data\" is {} bytes, more than the {} allowed (WS_MAX_PAYLOAD_BYTES)",
                       batch.data.back().size(), max_data_bytes);
  }
  item.data = batch.data.back();
  item.data_is_json = true;
  batch.items.push_back(item);
  return std::nullopt;
}

}  // namespace

std::optional<PublishError> parse_publish_body(std::string_view body, simdjson::dom::parser& parser,
                                               PublishBatch& batch, size_t max_data_bytes) {
  batch.items.clear();
  batch.data.clear();
  simdjson::dom::element root;
  if (auto error = parser.parse(body.data(), body.size()).get(root)) {
    return PublishError{std::string("body is not valid JSON: ") + simdjson::error_message(error)};
  }
  if (root.is_array()) {
    simdjson::dom::array array = root.get_array().value_unsafe();
    if (array.size() == 0) return PublishError{"empty array: nothing to publish"};
    long index = 0;
    for (simdjson::dom::element element : array) {
      if (auto problem = read_item(element, batch, max_data_bytes)) {
        batch.items.clear();
        return PublishError{*problem, index};
      }
      ++index;
    }
    return std::nullopt;
  }
  if (auto problem = read_item(root, batch, max_data_bytes)) {
    batch.items.clear();
    return PublishError{*problem};
  }
  return std::nullopt;
}

}  // namespace odin
