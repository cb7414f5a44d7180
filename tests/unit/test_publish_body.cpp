// Unit tests of the POST /publish body parser.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <vector>

#include "core/publish.hpp"

namespace odin {
namespace {

class PublishBody : public ::testing::Test {
 protected:
  std::optional<core::PublishError> parse(std::string_view body) {
    return core::parse_publish_body(body, parser_, batch_);
  }
  simdjson::dom::parser parser_;
  core::PublishBatch batch_;
};

TEST_F(PublishBody, OneObject) {
  ASSERT_FALSE(parse(R"({"channel":"BTCUSD","type":"price:update","data":{"p": 1}})"));
  ASSERT_EQ(batch_.items.size(), 1u);
  EXPECT_EQ(batch_.items[0].channel, "BTCUSD");
  EXPECT_EQ(batch_.items[0].type, "price:update");
  EXPECT_EQ(batch_.items[0].data, R"({"p": 1})");  // as written, spacing included
  EXPECT_TRUE(batch_.items[0].data_is_json);
}

TEST_F(PublishBody, ArrayAndDefaultType) {
  ASSERT_FALSE(parse(
      R"([{"channel":"a","data":1},{"channel":"b","data":"s"},{"channel":"c","data":[1,2]}])"));
  ASSERT_EQ(batch_.items.size(), 3u);
  EXPECT_EQ(batch_.items[0].type, "message");
  EXPECT_EQ(batch_.items[0].data, "1");
  EXPECT_EQ(batch_.items[1].data, "\"s\"");
  EXPECT_EQ(batch_.items[2].channel, "c");
  EXPECT_EQ(batch_.items[2].data, "[1,2]");
}

TEST_F(PublishBody, BadBodiesAreRefusedWhole) {
  struct Case {
    const char* body;
    long index;
  };
  for (const Case& c :
       {Case{"not json", -1}, Case{"{}", -1}, Case{"[]", -1}, Case{"42", -1},
        Case{R"({"channel":"a b","data":1})", -1}, Case{R"({"channel":"","data":1})", -1},
        Case{R"({"channel":5,"data":1})", -1}, Case{R"({"channel":"a"})", -1},
        Case{R"({"channel":"a","type":7,"data":1})", -1},
        Case{R"({"channel":"a","type":"","data":1})", -1},
        Case{R"([{"channel":"a","data":1},{"channel":"x/y","data":1}])", 1},
        Case{R"([{"channel":"a","data":1},3])", 1}}) {
    auto error = parse(c.body);
    ASSERT_TRUE(error) << c.body;
    EXPECT_FALSE(error->message.empty());
    EXPECT_EQ(error->index, c.index) << c.body;
    EXPECT_TRUE(batch_.items.empty()) << c.body;
  }
}

TEST_F(PublishBody, TypeLengthLimit) {
  std::string ok = R"({"channel":"a","data":1,"type":")" + std::string(128, 't') + "\"}";
  std::string too_long = R"({"channel":"a","data":1,"type":")" + std::string(129, 't') + "\"}";
  EXPECT_FALSE(parse(ok));
  EXPECT_TRUE(parse(too_long));
}

TEST(PublishBodyLimit, DataOverWsMaxPayloadBytesIsRefusedNamingTheItem) {
  simdjson::dom::parser parser;
  core::PublishBatch batch;
  // {"a" : "xxxxxxxxxx"} is 20 bytes as written.
  const std::string body =
      R"([{"channel":"A","data":1},{"channel":"B","data":{"a" : "xxxxxxxxxx"}}])";
  EXPECT_FALSE(core::parse_publish_body(body, parser, batch, 20));
  auto error = core::parse_publish_body(body, parser, batch, 19);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->index, 1);
  EXPECT_NE(error->message.find("WS_MAX_PAYLOAD_BYTES"), std::string::npos) << error->message;
  EXPECT_TRUE(batch.items.empty());
}

// Prices with trailing zeros carry meaning, and a client's escapes are its own: `data` is passed
// on byte for byte, whatever the member order, spacing, nesting and escaped keys around it.
TEST_F(PublishBody, DataIsTheClientsTextByteForByte) {
  const std::vector<std::string> datas = {
      "50000.10",
      "1e-7",
      R"("caf\u00e9")",
      R"("\/")",
      R"({"p":50000.10, "q" : [1e-7,-0.0,"a\"b"], "s":"caf\u00e9\/"})",
      "[ ]",
      "true",
      "null",
      R"("")",
  };
  for (const std::string& data : datas) {
    for (const std::string& body : {
             R"({"channel":"a","data":)" + data + "}",
             R"({ "data" :  )" + data + R"(  , "channel":"a","type":"t"})",
             "\xEF\xBB\xBF" + std::string(R"( {"type":"t","channel":"a","data":)") + data + "}",
             R"({"channel":"a","d\u0061ta":)" + data + R"(,"data":0})",
             R"( [ {"channel":"a","data":[{"data":1}]} ,{"channel":"b","x":{"data":2},"data":)" +
                 data + R"(}, {"channel":"c","data":)" + data + "} ]",
         }) {
      if (body.starts_with("\xEF") && parse(body)) continue;  // a parser without BOM support
      ASSERT_FALSE(parse(body)) << body;
      ASSERT_FALSE(batch_.items.empty());
      EXPECT_EQ(batch_.items.back().data, data) << body;
      EXPECT_TRUE(batch_.items.back().data_is_json);
    }
  }
  ASSERT_FALSE(parse(R"([{"channel":"a","data":[{"data":1}]},{"channel":"b","data":2}])"));
  EXPECT_EQ(batch_.items[0].data, R"([{"data":1}])");
  EXPECT_EQ(batch_.items[1].data, "2");
}

// The first "data" member counts (as simdjson's object["data"] finds it), and its size is the
// size as written.
TEST_F(PublishBody, FirstDataMemberAndItsWrittenSize) {
  ASSERT_FALSE(parse(R"({"channel":"a","data":"first","data":"second"})"));
  EXPECT_EQ(batch_.items[0].data, R"("first")");
  EXPECT_FALSE(core::parse_publish_body(R"({"channel":"a","data":50000.10})", parser_, batch_, 8));
  EXPECT_TRUE(core::parse_publish_body(R"({"channel":"a","data":50000.10})", parser_, batch_, 7));
}

TEST(PublishToken, BearerTokenMatchesOnlyTheWholeToken) {
  EXPECT_TRUE(core::bearer_token_matches("Bearer s3cret", "s3cret"));
  EXPECT_TRUE(core::bearer_token_matches("bearer s3cret", "s3cret"));  // the scheme is case-blind
  for (const char* wrong :
       {"", "Bearer", "Bearer ", "Bearer s3cre", "Bearer s3cret ", "Bearer s3creT",
        "Bearer s3crets", "Basic s3cret", "s3cret", "Bearer  s3cret"}) {
    EXPECT_FALSE(core::bearer_token_matches(wrong, "s3cret")) << wrong;
  }
  EXPECT_FALSE(core::bearer_token_matches("Bearer ", ""));
}

}  // namespace
}  // namespace odin
