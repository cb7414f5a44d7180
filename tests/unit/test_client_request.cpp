// Unit tests of client request parsing: every kind, every error with its exact code and message
// (clients and the integration tests read them), and the decoded fields.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <vector>

#include "session/client_request.hpp"

namespace odin {
namespace {

class ClientRequestTest : public ::testing::Test {
 protected:
  session::ClientRequest parse(std::string_view text) {
    return session::parse_client_request(text, parser_);
  }
  // Parses `text`, expecting `kind` with a bad_request `message`.
  void expect_bad(std::string_view text, session::RequestKind kind, std::string_view message) {
    const session::ClientRequest r = parse(text);
    EXPECT_EQ(r.kind, kind) << text;
    ASSERT_TRUE(r.error) << text;
    EXPECT_EQ(r.error->code, "bad_request") << text;
    EXPECT_EQ(r.error->message, message) << text;
  }
  simdjson::dom::parser parser_;
};

TEST_F(ClientRequestTest, NotAnObjectOrNoType) {
  expect_bad("not json", session::RequestKind::kInvalid, "not a JSON object");
  expect_bad("[1,2]", session::RequestKind::kInvalid, "not a JSON object");
  expect_bad("", session::RequestKind::kInvalid, "not a JSON object");
  expect_bad(R"({"data":{}})", session::RequestKind::kInvalid, "\"type\" must be a string");
  expect_bad(R"({"type":5})", session::RequestKind::kInvalid, "\"type\" must be a string");
  // The id is still echoed when the object is there.
  EXPECT_EQ(parse(R"({"type":null,"id": [ 1 , "a" ]})").id_json, R"([1,"a"])");
  EXPECT_EQ(parse(R"([{"id":1}])").id_json, "");
}

TEST_F(ClientRequestTest, UnknownType) {
  const session::ClientRequest r = parse(R"({"type":"dance","id":"z"})");
  EXPECT_EQ(r.kind, session::RequestKind::kUnknown);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->code, "unknown_type");
  EXPECT_EQ(r.error->message, "unknown request type");
  EXPECT_EQ(r.id_json, R"("z")");
}

TEST_F(ClientRequestTest, Subscribe) {
  session::ClientRequest r = parse(
      R"({"type":"subscribe","id":7,"data":{"channels":["A","b.c","A",":x-_"],"snapshot":true}})");
  EXPECT_EQ(r.kind, session::RequestKind::kSubscribe);
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.channels, (std::vector<std::string_view>{"A", "b.c", ":x-_"}));
  EXPECT_TRUE(r.snapshot);
  EXPECT_EQ(r.id_json, "7");
  // `symbols` is an alias; `channels` wins when both are there; snapshot must be a bool.
  r = parse(R"({"type":"subscribe","data":{"symbols":["S"],"snapshot":1}})");
  EXPECT_EQ(r.channels, (std::vector<std::string_view>{"S"}));
  EXPECT_FALSE(r.snapshot);
  r = parse(R"({"type":"subscribe","data":{"symbols":["S"],"channels":["C"]}})");
  EXPECT_EQ(r.channels, (std::vector<std::string_view>{"C"}));
}

// docs/protocol.md, latest-value subscriptions: delivery and max_hz (which implies latest).
TEST_F(ClientRequestTest, SubscribeDeliveryOptions) {
  session::ClientRequest r = parse(R"({"type":"subscribe","data":{"channels":["A"]}})");
  EXPECT_FALSE(r.delivery);  // v1: nothing given, nothing changed on a subscribed channel
  r = parse(R"({"type":"subscribe","data":{"channels":["A"],"delivery":"latest"}})");
  ASSERT_FALSE(r.error);
  ASSERT_TRUE(r.delivery);
  EXPECT_TRUE(r.delivery->latest);
  EXPECT_EQ(r.delivery->max_hz, 0);
  EXPECT_FALSE(r.max_hz_given);
  r = parse(R"({"type":"subscribe","data":{"channels":["A"],"max_hz":4}})");
  ASSERT_TRUE(r.delivery);
  EXPECT_TRUE(r.delivery->latest);
  EXPECT_EQ(r.delivery->max_hz, 4);
  EXPECT_TRUE(r.max_hz_given);
  r = parse(R"({"type":"subscribe","data":{"channels":["A"],"max_hz":0.1,"delivery":"latest"}})");
  ASSERT_TRUE(r.delivery);
  EXPECT_DOUBLE_EQ(r.delivery->max_hz, 0.1);
  r = parse(R"({"type":"subscribe","data":{"channels":["A"],"delivery":"all"}})");
  ASSERT_TRUE(r.delivery);
  EXPECT_FALSE(r.delivery->latest);

  const std::string head = R"({"type":"subscribe","data":{"channels":["A"],)";
  for (const char* rest : {R"("max_hz":0}})", R"("max_hz":0.09}})", R"("max_hz":1000.5}})",
                           R"("max_hz":"4"}})", R"("max_hz":null}})", R"("max_hz":-1}})"}) {
    expect_bad(head + rest, session::RequestKind::kSubscribe,
               "max_hz must be a number from 0.1 to 1000");
  }
  for (const char* rest : {R"("delivery":"bogus"}})", R"("delivery":1}})", R"("delivery":""}})"}) {
    expect_bad(head + rest, session::RequestKind::kSubscribe,
               "delivery must be \"all\" or \"latest\"");
  }
  expect_bad(head + R"("delivery":"all","max_hz":4}})", session::RequestKind::kSubscribe,
             "max_hz needs \"delivery\":\"latest\"");
  EXPECT_TRUE(parse(head + R"("max_hz":5000}})").channels.empty());  // refused: nothing changes
}

TEST_F(ClientRequestTest, Unsubscribe) {
  const session::ClientRequest r =
      parse(R"({"type":"unsubscribe","data":{"channels":["A","A"],"snapshot":true}})");
  EXPECT_EQ(r.kind, session::RequestKind::kUnsubscribe);
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.channels, (std::vector<std::string_view>{"A"}));
  EXPECT_FALSE(r.snapshot);  // meaningless for unsubscribe
}

TEST_F(ClientRequestTest, SubscribeErrors) {
  for (session::RequestKind kind :
       {session::RequestKind::kSubscribe, session::RequestKind::kUnsubscribe}) {
    const std::string type = kind == session::RequestKind::kSubscribe ? "subscribe" : "unsubscribe";
    const std::string head = R"({"type":")" + type + R"(")";
    expect_bad(head + "}", kind, "data.channels must be an array of channel names");
    expect_bad(head + R"(,"data":[]})", kind, "data must be an object");
    expect_bad(head + R"(,"data":{}})", kind, "data.channels must be an array of channel names");
    expect_bad(head + R"(,"data":{"channels":"A"}})", kind,
               "data.channels must be a non-empty array of channel names");
    expect_bad(head + R"(,"data":{"channels":[]}})", kind,
               "data.channels must be a non-empty array of channel names");
    for (const std::string& bad : std::vector<std::string>{
             R"("")", R"("a b")", R"("x/y")", "5", "null", '"' + std::string(129, 'x') + '"'}) {
      expect_bad(head + R"(,"data":{"channels":["ok",)" + bad + "]}}", kind,
                 "invalid channel name (1-128 of A-Z a-z 0-9 _ - . :)");
    }
    EXPECT_TRUE(parse(head + R"(,"data":{"channels":["ok",1]}})").channels.empty());
  }
  EXPECT_FALSE(
      parse(R"({"type":"subscribe","data":{"channels":[")" + std::string(128, 'x') + R"("]}})")
          .error);
}

// A JSON array of `count` names c0, c1, ..., each written `repeat` times in a row, then `tail`.
std::string json_channels(size_t count, size_t repeat = 1, std::string_view tail = "") {
  std::string list = "[";
  for (size_t i = 0; i < count; ++i) {
    for (size_t k = 0; k < repeat; ++k)
      list += "\"c" + std::to_string(i) + "\",";
  }
  list += tail;
  if (list.back() == ',') list.pop_back();
  return list + "]";
}

TEST_F(ClientRequestTest, LongChannelListsDedupedInOrder) {
  const session::ClientRequest r = session::parse_client_request(
      R"({"type":"subscribe","data":{"channels":)" + json_channels(500, 3) + "}}", parser_, 500);
  ASSERT_FALSE(r.error);
  ASSERT_EQ(r.channels.size(), 500u);
  for (size_t i = 0; i < r.channels.size(); ++i)
    EXPECT_EQ(r.channels[i], "c" + std::to_string(i));
  // Duplicates never count toward the cap.
  const session::ClientRequest same = session::parse_client_request(
      R"({"type":"subscribe","data":{"channels":)" + json_channels(1, 5000) + "}}", parser_, 1);
  ASSERT_FALSE(same.error);
  EXPECT_EQ(same.channels, (std::vector<std::string_view>{"c0"}));
}

TEST_F(ClientRequestTest, ChannelListsStopOnePastTheCap) {
  // 5,000 distinct names and a bad one at the end: reading stops at the 101st name, which the
  // caller's per-connection check refuses (too_many_channels), and the bad name is never read.
  const std::string list = json_channels(5000, 1, "\"bad name\"");
  const session::ClientRequest sub = session::parse_client_request(
      R"({"type":"subscribe","data":{"channels":)" + list + "}}", parser_, 100);
  ASSERT_FALSE(sub.error);
  ASSERT_EQ(sub.channels.size(), 101u);
  EXPECT_EQ(sub.channels.back(), "c100");
  const session::ClientRequest resume = session::parse_client_request(
      R"({"type":"resume","data":{"session":"00000000000abc01","last_seq":1,"last_pos":5,)"
      R"("channels":)" +
          list + "}}",
      parser_, 100);
  ASSERT_FALSE(resume.error);
  EXPECT_EQ(resume.channels.size(), 101u);
  // An unsubscribe cut short would leave the rest subscribed: refused instead.
  const session::ClientRequest unsub = session::parse_client_request(
      R"({"type":"unsubscribe","data":{"channels":)" + list + "}}", parser_, 100);
  ASSERT_TRUE(unsub.error);
  EXPECT_EQ(unsub.error->code, "too_many_channels");
  EXPECT_TRUE(unsub.channels.empty());
  // At the cap exactly, all is read (and a bad name is still found).
  const session::ClientRequest full = session::parse_client_request(
      R"({"type":"unsubscribe","data":{"channels":)" + json_channels(100) + "}}", parser_, 100);
  ASSERT_FALSE(full.error);
  EXPECT_EQ(full.channels.size(), 100u);
  expect_bad(
      R"({"type":"unsubscribe","data":{"channels":)" + json_channels(99, 1, "\"a b\"") + "}}",
      session::RequestKind::kUnsubscribe, "invalid channel name (1-128 of A-Z a-z 0-9 _ - . :)");
}

TEST_F(ClientRequestTest, Heartbeat) {
  const session::ClientRequest r = parse(R"({"type":"heartbeat","id":{"k": 1}})");
  EXPECT_EQ(r.kind, session::RequestKind::kHeartbeat);
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.id_json, R"({"k":1})");
}

TEST_F(ClientRequestTest, Replay) {
  session::ClientRequest r = parse(R"({"type":"replay","data":{"from":5,"to":7}})");
  EXPECT_EQ(r.kind, session::RequestKind::kReplay);
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.replay_from, 5u);
  EXPECT_EQ(r.replay_to, 7u);
  r = parse(R"({"type":"replay","data":{"from":18446744073709551615}})");
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.replay_from, UINT64_MAX);
  EXPECT_FALSE(r.replay_to);  // the caller uses the session's last seq
  EXPECT_FALSE(parse(R"({"type":"replay","data":{"from":3,"to":3}})").error);
}

TEST_F(ClientRequestTest, ReplayErrors) {
  constexpr std::string_view kFrom = "replay needs data.from, a seq >= 1";
  for (const char* text :
       {R"({"type":"replay"})", R"({"type":"replay","data":1})", R"({"type":"replay","data":{}})",
        R"({"type":"replay","data":{"from":0}})", R"({"type":"replay","data":{"from":-1}})",
        R"({"type":"replay","data":{"from":1.5}})", R"({"type":"replay","data":{"from":"1"}})"}) {
    expect_bad(text, session::RequestKind::kReplay, kFrom);
  }
  expect_bad(R"({"type":"replay","data":{"from":1,"to":-2}})", session::RequestKind::kReplay,
             "data.to must be a seq");
  expect_bad(R"({"type":"replay","data":{"from":1,"to":null}})", session::RequestKind::kReplay,
             "data.to must be a seq");
  expect_bad(R"({"type":"replay","data":{"from":5,"to":2}})", session::RequestKind::kReplay,
             "data.from is after data.to");
}

TEST_F(ClientRequestTest, Resume) {
  constexpr const char* kId = "0123456789abcdef00000000000abc01";
  const session::ClientRequest r = parse(
      std::string(R"({"type":"resume","id":1,"data":{"session":")") + kId + R"(","last_seq":42}})");
  EXPECT_EQ(r.kind, session::RequestKind::kResume);
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.resume_session, kId);
  ASSERT_TRUE(r.resume_session_id);
  EXPECT_EQ(r.resume_session_id->hi, 0x0123456789abcdefULL);
  EXPECT_EQ(r.resume_session_id->lo, 0xabc01ULL);
  EXPECT_EQ(r.resume_session_id->thread(), 1u);
  EXPECT_EQ(r.resume_last_seq, 42u);
}

// A session id of another form names no session of this gateway: the request is well formed and
// the answer will be resume_failed (PROTOCOL.md), not bad_request.
TEST_F(ClientRequestTest, ResumeNamingAnIdOfAnotherFormIsNotABadRequest) {
  for (const char* session :
       {"abc01", "00000000000abc01", "ffffffffffffffff", "", "0123456789ABCDEF00000000000abc01",
        "-123456789abcdef00000000000abc01", "0123456789abcdef00000000000abc011",
        "not an id at all"}) {
    const session::ClientRequest r = parse(std::string(R"({"type":"resume","data":{"session":")") +
                                           session + R"(","last_seq":0}})");
    EXPECT_EQ(r.kind, session::RequestKind::kResume) << session;
    EXPECT_FALSE(r.error) << session;
    EXPECT_EQ(r.resume_session, session);
    EXPECT_FALSE(r.resume_session_id) << session;
  }
}

TEST_F(ClientRequestTest, ResumeLastSeqLeavesRoomBelowTwoToThe53) {
  const std::string head = R"({"type":"resume","data":{"session":"x","last_seq":)";
  EXPECT_FALSE(parse(head + std::to_string(session::kMaxResumableSeq) + "}}").error);
  expect_bad(head + std::to_string(session::kMaxResumableSeq + 1) + "}}",
             session::RequestKind::kResume,
             "data.last_seq is beyond what a client can count (2^53 - 2^32)");
  expect_bad(head + "18446744073709551615}}", session::RequestKind::kResume,
             "data.last_seq is beyond what a client can count (2^53 - 2^32)");
}

TEST_F(ClientRequestTest, ResumeErrors) {
  for (const char* text : {
           R"({"type":"resume"})",
           R"({"type":"resume","data":"x"})",
           R"({"type":"resume","data":{"last_seq":1}})",
           R"({"type":"resume","data":{"session":"00000000000abc01"}})",
           R"({"type":"resume","data":{"session":"00000000000abc01","last_seq":-1}})",
           R"({"type":"resume","data":{"session":"00000000000abc01","last_seq":"1"}})",
           R"({"type":"resume","data":{"session":1,"last_seq":1}})",
       }) {
    expect_bad(text, session::RequestKind::kResume, "resume needs data.session and data.last_seq");
  }
}

TEST_F(ClientRequestTest, ResumeWithStreamPosition) {
  const session::ClientRequest r =
      parse(R"({"type":"resume","data":{"session":"00000000000abc01","last_seq":7,"last_pos":4711,)"
            R"("channels":["BTCUSD","ETHUSD","BTCUSD"]}})");
  ASSERT_FALSE(r.error);
  ASSERT_TRUE(r.resume_last_pos);
  EXPECT_EQ(*r.resume_last_pos, 4711u);
  EXPECT_EQ(r.channels, (std::vector<std::string_view>{"BTCUSD", "ETHUSD"}));
  // `symbols` is the alias here too, and position 0 (nothing received yet) is a position.
  const session::ClientRequest zero =
      parse(R"({"type":"resume","data":{"session":"00000000000abc01","last_seq":0,"last_pos":0,)"
            R"("symbols":["A"]}})");
  ASSERT_FALSE(zero.error);
  EXPECT_EQ(zero.resume_last_pos, 0u);
  // Without them it is a v1 resume.
  EXPECT_FALSE(parse(R"({"type":"resume","data":{"session":"00000000000abc01","last_seq":1}})")
                   .resume_last_pos);
}

TEST_F(ClientRequestTest, ResumeWithStreamPositionErrors) {
  const std::string head = R"({"type":"resume","data":{"session":"00000000000abc01","last_seq":1,)";
  for (const char* rest : {
           R"("last_pos":5}})",
           R"("channels":["A"]}})",
           R"("last_pos":-5,"channels":["A"]}})",
           R"("last_pos":"5","channels":["A"]}})",
       }) {
    expect_bad(head + rest, session::RequestKind::kResume,
               "data.last_pos (a stream position) and data.channels go together");
  }
  expect_bad(head + R"("last_pos":5,"channels":["bad name"]}})", session::RequestKind::kResume,
             "invalid channel name (1-128 of A-Z a-z 0-9 _ - . :)");
  expect_bad(head + R"("last_pos":5,"channels":[]}})", session::RequestKind::kResume,
             "data.channels must be a non-empty array of channel names");
}

TEST_F(ClientRequestTest, ResumeWithStreamPositionCarriesDeliveryOptions) {
  const std::string head =
      R"({"type":"resume","data":{"session":"00000000000abc01","last_seq":1,"last_pos":5,)"
      R"("channels":["A","B","C"],)";
  const session::ClientRequest r =
      parse(head + R"("options":{"A":{"max_hz":2},"B":{"delivery":"all"},"C":{}}}})");
  ASSERT_FALSE(r.error) << r.error->message;
  ASSERT_EQ(r.resume_options.size(), 2u);  // C gave none
  EXPECT_EQ(r.resume_options[0].first, "A");
  EXPECT_TRUE(r.resume_options[0].second.latest);
  EXPECT_EQ(r.resume_options[0].second.max_hz, 2);
  EXPECT_EQ(r.resume_options[1].first, "B");
  EXPECT_FALSE(r.resume_options[1].second.latest);
  const std::string bad = "data.options must map channels of data.channels to {delivery, max_hz}";
  expect_bad(head + R"("options":{"Z":{"max_hz":2}}}})", session::RequestKind::kResume, bad);
  expect_bad(head + R"("options":[1]}})", session::RequestKind::kResume, bad);
  expect_bad(head + R"("options":{"A":3}}})", session::RequestKind::kResume, bad);
  expect_bad(head + R"("options":{"A":{"max_hz":0}}}})", session::RequestKind::kResume,
             "max_hz must be a number from 0.1 to 1000");
}

TEST_F(ClientRequestTest, Auth) {
  const session::ClientRequest r = parse(R"({"type":"auth","id":"a","data":{"token":"eyJ.x.y"}})");
  EXPECT_EQ(r.kind, session::RequestKind::kAuth);
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.auth_token, "eyJ.x.y");
  for (const char* text :
       {R"({"type":"auth"})", R"({"type":"auth","data":"t"})", R"({"type":"auth","data":{}})",
        R"({"type":"auth","data":{"token":1}})"}) {
    expect_bad(text, session::RequestKind::kAuth, "auth needs data.token, a string");
  }
}

TEST_F(ClientRequestTest, ViewsPointIntoTheParsersDocument) {
  // The parser copies the text into its own padded buffer: the views outlive `text` but not the
  // next parse.
  std::string text = R"({"type":"subscribe","data":{"channels":["AAA"]}})";
  const session::ClientRequest r = parse(text);
  text.assign(text.size(), ' ');
  EXPECT_EQ(r.channels, (std::vector<std::string_view>{"AAA"}));
}

}  // namespace
}  // namespace odin
