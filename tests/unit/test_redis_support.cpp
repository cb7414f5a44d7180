// Unit tests of the Redis broker's pure parts: REDIS_URL parsing (and that its errors and the
// logged form never show the password), the PSUBSCRIBE pattern, and the payload convention in
// both directions.
#include <gtest/gtest.h>

#include <simdjson.h>

#include <string>
#include <variant>

#include "broker/redis_support.hpp"

namespace odin {
namespace {

broker::RedisUrl ok(std::string_view text) {
  auto r = broker::parse_redis_url(text);
  if (auto* e = std::get_if<std::string>(&r)) {
    ADD_FAILURE() << text << ": " << *e;
    return {};
  }
  return std::get<broker::RedisUrl>(r);
}

std::string error_of(std::string_view text) {
  auto r = broker::parse_redis_url(text);
  auto* e = std::get_if<std::string>(&r);
  return e ? *e : "";
}

TEST(RedisUrl, HostAloneTakesTheDefaults) {
  const broker::RedisUrl u = ok("redis://127.0.0.1");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.db, 0u);
  EXPECT_EQ(u.username, "");
  EXPECT_EQ(u.password, "");
  EXPECT_EQ(u.display(), "redis://127.0.0.1:6379/0");
}

TEST(RedisUrl, EveryPart) {
  broker::RedisUrl u = ok("redis://:s3cret@cache.internal:6380/5");
  EXPECT_EQ(u.host, "cache.internal");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 5u);
  EXPECT_EQ(u.username, "");
  EXPECT_EQ(u.password, "s3cret");
  u = ok("REDIS://gateway:p%40ss%3Aw0rd@10.0.0.7:1/");  // scheme in any case, %-escapes
  EXPECT_EQ(u.username, "gateway");
  EXPECT_EQ(u.password, "p@ss:w0rd");
  EXPECT_EQ(u.host, "10.0.0.7");
  EXPECT_EQ(u.port, 1);
  EXPECT_EQ(u.db, 0u);
  u = ok("redis://[::1]:7000/2147483647");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 7000);
  EXPECT_EQ(u.db, 2147483647u);
  EXPECT_EQ(u.display(), "redis://[::1]:7000/2147483647");
  u = ok("redis://a:b@c@host");  // the last '@' ends the credentials
  EXPECT_EQ(u.password, "b@c");
  EXPECT_EQ(u.host, "host");
}

TEST(RedisUrl, DisplayNeverShowsThePassword) {
  EXPECT_EQ(ok("redis://:hunter2@h:1/3").display(), "redis://:***@h:1/3");
  EXPECT_EQ(ok("redis://alice:hunter2@h").display(), "redis://alice:***@h:6379/0");
}

TEST(RedisUrl, BadValuesAreRefusedWithoutEchoingThem) {
  for (const char* bad : {
           "",
           "127.0.0.1:6379",                 // no scheme
           "http://127.0.0.1",               // another scheme
           "rediss://127.0.0.1",             // TLS: not supported by this build
           "redis://",                       // no host
           "redis://:6379",                  // no host
           "redis://host:",                  // empty port
           "redis://host:0",                 // port 0
           "redis://host:65536",             // port too large
           "redis://host:12ab",              // not a number
           "redis://host/db1",               // db not a number
           "redis://host/-1",                // negative db
           "redis://host/2147483648",        // db too large
           "redis://host?timeout=1",         // query
           "redis://host#x",                 // fragment
           "redis://ho st",                  // space
           "redis://host\n",                 // control character
           "redis://pw@host",                // credentials without ':'
           "redis://:@host",                 // empty password
           "redis://:pw%4@host",             // broken escape
           "redis://:pw%zz@host",            // broken escape
           "redis://[::1",                   // unclosed bracket
           "redis://[::1]x",                 // junk after bracket
           "redis://[g::1]",                 // not IPv6
           "redis://host/name:with:colons",  // db not a number
           "redis://exa$mple.com",           // not a host name
       }) {
    const std::string error = error_of(bad);
    EXPECT_FALSE(error.empty()) << "accepted: " << bad;
    EXPECT_TRUE(error.starts_with("expected redis://")) << error;
  }
  // The password (or anything else of the value) never appears in the error.
  const std::string error = error_of("redis://:TopSecret99@host:99999");
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(error.find("TopSecret99"), std::string::npos) << error;
  EXPECT_EQ(error.find("99999"), std::string::npos) << error;
}

TEST(RedisPattern, EscapesGlobCharactersOfThePrefix) {
  EXPECT_EQ(broker::redis_channel_pattern("odin.token."), "odin.token.*");
  EXPECT_EQ(broker::redis_channel_pattern("a?b[c]d\\e:"), "a\\?b\\[c\\]d\\\\e:*");
}

TEST(RedisPayload, ObjectFormGivesTypeAndRawData) {
  broker::RedisPayloadReader reader;
  const std::string payload = R"( {"type":"price:update","data":{"p":1.10, "s":"x}"}} )";
  broker::RedisPayload p = reader.read(payload);
  EXPECT_TRUE(p.object_form);
  EXPECT_EQ(p.type, "price:update");
  EXPECT_EQ(p.data, R"({"p":1.10, "s":"x}"})");  // verbatim, not re-serialised
  // A view into the payload itself.
  EXPECT_GE(p.data.data(), payload.data());
  EXPECT_LE(p.data.data() + p.data.size(), payload.data() + payload.size());

  p = reader.read(R"({"data" : [1,[2,{"a":"]"}]] , "type":"t"})");  // order does not matter
  EXPECT_TRUE(p.object_form);
  EXPECT_EQ(p.type, "t");
  EXPECT_EQ(p.data, R"([1,[2,{"a":"]"}]])");

  for (const auto& [json, data] : std::vector<std::pair<std::string, std::string>>{
           {R"({"type":"a","data":"text \"q\" \\"})", R"("text \"q\" \\")"},
           {R"({"type":"a","data":-1.5e3})", "-1.5e3"},
           {R"({"type":"a","data":null})", "null"},
           {R"({"type":"a","data":true})", "true"},
           {R"({"type":"a","data":{}})", "{}"},
           {"{\"type\":\"a\",\n\"data\"\t:\r\n 7 }", "7"},
       }) {
    p = reader.read(json);
    EXPECT_TRUE(p.object_form) << json;
    EXPECT_EQ(p.data, data) << json;
  }
}

TEST(RedisPayload, EscapedKeysAndTypeAreUnescaped) {
  broker::RedisPayloadReader reader;
  broker::RedisPayload p = reader.read(R"({"t\u0079pe":"caf\u00e9\n","d\u0061ta":[1]})");
  EXPECT_TRUE(p.object_form);
  EXPECT_EQ(p.type, "caf\xc3\xa9\n");
  EXPECT_EQ(p.data, "[1]");
  // "data" is taken even when the other key's value contains text that looks like a key.
  p = reader.read(R"({"type":"\"data\":","data":2})");
  EXPECT_TRUE(p.object_form);
  EXPECT_EQ(p.type, "\"data\":");
  EXPECT_EQ(p.data, "2");
}

TEST(RedisPayload, AnythingElseIsTheDataOfAMessage) {
  broker::RedisPayloadReader reader;
  for (const std::string& payload : {
           std::string("hello"), std::string(""), std::string("42"),
           std::string(R"(["type","data"])"),
           std::string(R"({"type":"a"})"),                     // no data
           std::string(R"({"data":1})"),                       // no type
           std::string(R"({"type":"a","data":1,"extra":0})"),  // a third key
           std::string(R"({"type":1,"data":1})"),              // type not a string
           std::string(R"({"type":null,"data":1})"),           // type not a string
           std::string(R"({"type":"a","type":"b"})"),          // duplicate keys, no data
           std::string(R"({"data":1,"data":2})"),              // duplicate keys, no type
           std::string(R"({"type":"a","data":1)"),             // not JSON
           std::string(R"({"type":"a","data":1} x)"),          // trailing junk
           std::string("{\"type\":\"a\",\"data\":\"\xff\"}"),  // not UTF-8
       }) {
    broker::RedisPayload p = reader.read(payload);
    EXPECT_FALSE(p.object_form) << payload;
    EXPECT_EQ(p.data, payload);
    EXPECT_EQ(p.type, "");
  }
}

TEST(RedisPayload, PublishedFormReadsBackAsItWasGiven) {
  broker::RedisPayloadReader reader;
  std::string out = broker::redis_publish_payload("trade", R"({"q":2})", true);
  EXPECT_EQ(out, R"({"type":"trade","data":{"q":2}})");
  broker::RedisPayload p = reader.read(out);
  EXPECT_TRUE(p.object_form);
  EXPECT_EQ(p.type, "trade");
  EXPECT_EQ(p.data, R"({"q":2})");

  // Text that is not JSON travels as a JSON string; a type with quotes is escaped.
  out = broker::redis_publish_payload("say \"hi\"", "line\nbreak \"x\"", false);
  p = reader.read(out);
  EXPECT_TRUE(p.object_form) << out;
  EXPECT_EQ(p.type, "say \"hi\"");
  EXPECT_EQ(p.data, R"("line\nbreak \"x\"")");
}

TEST(RedisPayload, RawMemberOnlyLooksAtTheTopLevel) {
  simdjson::dom::parser parser;
  const std::string json = R"({"a":{"data":1},"b":[{"data":2}],"data":3})";
  auto m = broker::raw_member(json, "data", parser);
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, "3");
  EXPECT_FALSE(broker::raw_member(R"({"a":{"data":1}})", "data", parser));
  EXPECT_FALSE(broker::raw_member("[1]", "data", parser));
  EXPECT_FALSE(broker::raw_member("", "data", parser));
}

}  // namespace
}  // namespace odin
