// Fuzzes RedisPayloadReader::read, which reads every message taken from Redis pub/sub (the
// payload convention: {"type":"...","data":...} and nothing else carries both, anything else is
// the data of a "message"); the input is the payload.
// Invariants beyond "no crash, no leak, no UB":
//  - not the object form: the data is the whole payload and the type is empty;
//  - object form: the payload is a JSON object with exactly the keys "type" (a string equal to
//    the type read) and "data" (equal, as JSON, to the data read); the data is a piece of the
//    payload and valid JSON on its own;
//  - the object form rebuilt from type and data (what POST /publish sends) reads back the same;
//  - reading the same payload again with the same (reused) reader gives the same result.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "broker/redis_support.hpp"

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) violated(what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  static odin::broker::RedisPayloadReader
      reader;  // reused across inputs, as the intake reuses its own
  static simdjson::dom::parser whole_parser;
  static simdjson::dom::parser data_parser;
  const std::string_view payload(reinterpret_cast<const char*>(bytes), size);
  const odin::broker::RedisPayload first = reader.read(payload);
  if (!first.object_form) {
    check(first.data.data() == payload.data() && first.data.size() == payload.size(),
          "not the object form, yet the data is not the payload");
    check(first.type.empty(), "not the object form, yet a type");
  } else {
    check(first.data.data() >= payload.data() &&
              first.data.data() + first.data.size() <= payload.data() + payload.size(),
          "data outside the payload");
    simdjson::dom::object object;
    check(!whole_parser.parse(payload.data(), payload.size()).get(object),
          "object form that is not a JSON object");
    check(object.size() == 2, "object form without exactly two keys");
    std::string_view type;
    check(!object["type"].get(type), "object form without a string type");
    check(type == first.type, "type read differs from the payload's");
    simdjson::dom::element data;
    check(!data_parser.parse(first.data.data(), first.data.size()).get(data),
          "data is not valid JSON on its own");
    check(simdjson::minify(data) == simdjson::minify(object["data"].value_unsafe()),
          "data read differs from the payload's");

    const std::string rebuilt = odin::broker::redis_publish_payload(first.type, first.data, true);
    const std::string type_copy = first.type;
    const std::string data_copy(first.data);
    const odin::broker::RedisPayload again = reader.read(rebuilt);
    check(again.object_form, "rebuilt object form not read as one");
    check(again.type == type_copy && again.data == data_copy,
          "rebuilt object form reads differently");
  }
  const odin::broker::RedisPayload repeat = reader.read(payload);
  check(repeat.object_form == first.object_form && repeat.type == first.type &&
            repeat.data == first.data,
        "the same payload read twice differs");
  return 0;
}
