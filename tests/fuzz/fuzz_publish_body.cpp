// Fuzzes parse_publish_body, the body of POST /publish (one {"channel","type","data"} object or
// an array of them); the input is the body itself. It runs without a size limit on `data` and
// with a small one (64 bytes) to reach the WS_MAX_PAYLOAD_BYTES refusal.
// Invariants beyond "no crash, no leak, no UB":
//  - accepted: at least one item, one per array element; every channel a valid channel name,
//    every type 1-128 characters, every `data` marked JSON, a piece of the body itself (passed
//    on byte for byte), valid JSON when parsed alone, without surrounding spaces, and within
//    the limit;
//  - refused: no item left in the batch, a message, and an index inside the array (or -1);
//  - what the limited run accepts, the unlimited run accepts identically.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/channel_name.hpp"
#include "core/publish.hpp"

namespace {

constexpr size_t kSmallLimit = 64;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) violated(what);
}

// Checks a result and returns a summary of it for comparing two runs.
std::string check_result(const std::optional<odin::core::PublishError>& error,
                         const odin::core::PublishBatch& batch, std::string_view body,
                         size_t limit) {
  static simdjson::dom::parser data_parser;
  if (error) {
    check(batch.items.empty(), "refused body left items");
    check(!error->message.empty(), "refusal without a message");
    check(error->index >= -1, "negative index");
    check(error->index < static_cast<long>(body.size()), "index past any possible element");
    return "error";
  }
  check(!batch.items.empty(), "accepted body without items");
  static simdjson::dom::parser shape_parser;
  simdjson::dom::element root;
  check(!shape_parser.parse(body.data(), body.size()).get(root), "accepted body is not JSON");
  const size_t elements = root.is_array() ? root.get_array().value_unsafe().size() : 1;
  check(batch.items.size() == elements, "not one item per element");
  std::string summary;
  for (const odin::core::IngestItem& item : batch.items) {
    check(odin::core::is_valid_channel_name(item.channel), "item with an invalid channel");
    check(!item.type.empty() && item.type.size() <= odin::core::kMaxTypeLength, "item type length");
    check(item.data_is_json, "item data not marked JSON");
    check(item.data.size() <= limit, "item data over the limit");
    simdjson::dom::element data;
    if (data_parser.parse(item.data.data(), item.data.size()).get(data)) {
      violated("item data is not valid JSON");
    }
    check(item.data.data() >= body.data() &&
              item.data.data() + item.data.size() <= body.data() + body.size(),
          "item data is not the body's own text");
    check(!item.data.empty() && item.data.front() > ' ' && item.data.back() > ' ',
          "item data has surrounding spaces");
    summary.append(item.channel).append("|").append(item.type).append("|").append(item.data);
    summary.push_back('\n');
  }
  return summary;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static simdjson::dom::parser parser;  // reused across inputs, as the gateway reuses its own
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  odin::core::PublishBatch batch;
  const std::string unlimited =
      check_result(odin::core::parse_publish_body(body, parser, batch), batch, body, SIZE_MAX);
  odin::core::PublishBatch small;
  const std::string limited = check_result(
      odin::core::parse_publish_body(body, parser, small, kSmallLimit), small, body, kSmallLimit);
  if (limited != "error") check(limited == unlimited, "the limit changes what is accepted");
  return 0;
}
