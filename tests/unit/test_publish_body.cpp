// Unit tests of the POST /publish body parser.
#include <gtest/gtest.h>
#include <simdjson.h>

#include "http/publish.hpp"

namespace odin {
namespace {

class PublishBody : public ::testing::Test {
 protected:
  std::optional<PublishError> parse(std::string_view body) {
    return parse_publish_body(body, parser_, batch_);
  }
  simdjson::dom::parser parser_;
  PublishBatch batch_;
};

TEST_F(PublishBody, OneObject) {
  ASSERT_FALSE(parse(R"({"channel":"BTCUSD","type":"price:update","data":{"p": 1}})"));
  ASSERT_EQ(batch_.items.size(), 1u);
  EXPECT_EQ(batch_.items[0].channel, "BTCUSD");
  EXPECT_EQ(batch_.items[0].type, "price:update");
  EXPECT_EQ(batch_.items[0].data, R"({"p":1})");
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
  PublishBatch batch;
  // {"a":"xxxxxxxxxx"} is 18 bytes once compact.
  const std::string body =
      R"([{"channel":"A","data":1},{"channel":"B","data":{"a" : "xxxxxxxxxx"}}])";
  EXPECT_FALSE(parse_publish_body(body, parser, batch, 18));
  auto error = parse_publish_body(body, parser, batch, 17);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->index, 1);
  EXPECT_NE(error->message.find("WS_MAX_PAYLOAD_BYTES"), std::string::npos) << error->message;
  EXPECT_TRUE(batch.items.empty());
}

}  // namespace
}  // namespace odin
