// The NATS intake's decisions (broker/intake.hpp): which broker messages may reach clients,
// redelivery dedupe, the CPU pause switch and the intake rate pacer.
#include "broker/intake.hpp"

#include <gtest/gtest.h>

#include <string>

namespace odin {
namespace {

struct Checked {
  std::optional<ops::IntakeReject> reject;
  core::IngestItem item;
};

Checked check(broker::IntakeFilter& filter, std::string_view subject, const std::string_view* type,
              std::string_view payload) {
  Checked c;
  c.reject = filter.check(subject, type, payload, c.item);
  return c;
}

TEST(IntakeFilter, ChannelIsTheRestOfTheSubjectAndTypeComesFromTheHeader) {
  broker::IntakeFilter filter("odin.token.", 1024);
  const std::string_view type = "price:update";
  Checked c = check(filter, "odin.token.BTC-USD.v1", &type, R"({"p":1})");
  ASSERT_FALSE(c.reject);
  EXPECT_EQ(c.item.channel, "BTC-USD.v1");
  EXPECT_EQ(c.item.type, "price:update");
  EXPECT_EQ(c.item.data, R"({"p":1})");
  EXPECT_TRUE(c.item.data_is_json);
  c = check(filter, "odin.token.ETH", nullptr, "plain text");
  ASSERT_FALSE(c.reject);
  EXPECT_EQ(c.item.type, "message");
  EXPECT_FALSE(c.item.data_is_json);
}

TEST(IntakeFilter, JsonIsRecognisedWhateverItsKind) {
  broker::IntakeFilter filter("p.", 1024);
  for (std::string_view json : {"1", "\"s\"", "[1,2]", " {\"a\" : null} ", "true", "-0.5e3"}) {
    Checked c = check(filter, "p.X", nullptr, json);
    ASSERT_FALSE(c.reject) << json;
    EXPECT_TRUE(c.item.data_is_json) << json;
  }
  for (std::string_view text : {"", "{", "{'a':1}", "1 2", "nan", "[1,]"}) {
    Checked c = check(filter, "p.X", nullptr, text);
    ASSERT_FALSE(c.reject) << text;
    EXPECT_FALSE(c.item.data_is_json) << text;
  }
}

TEST(IntakeFilter, RejectsWhatCannotBecomeAValidEnvelope) {
  broker::IntakeFilter filter("odin.token.", 16);
  const std::string_view good_type = "t";
  const std::string long_type(129, 't');
  const std::string_view too_long = long_type;
  const std::string_view empty_type = "";
  const std::string_view bad_utf8_type = "\xc3";
  EXPECT_EQ(check(filter, "other.BTC", nullptr, "1").reject, ops::IntakeReject::kBadSubject);
  EXPECT_EQ(check(filter, "odin.token.", nullptr, "1").reject, ops::IntakeReject::kBadSubject);
  EXPECT_EQ(check(filter, "odin.token.a/b", nullptr, "1").reject, ops::IntakeReject::kBadSubject);
  EXPECT_EQ(check(filter, "odin.token." + std::string(129, 'x'), nullptr, "1").reject,
            ops::IntakeReject::kBadSubject);
  EXPECT_EQ(check(filter, "odin.token.X", &too_long, "1").reject, ops::IntakeReject::kBadType);
  EXPECT_EQ(check(filter, "odin.token.X", &empty_type, "1").reject, ops::IntakeReject::kBadType);
  EXPECT_EQ(check(filter, "odin.token.X", &bad_utf8_type, "1").reject, ops::IntakeReject::kBadType);
  EXPECT_EQ(check(filter, "odin.token.X", &good_type, std::string(17, '1')).reject,
            ops::IntakeReject::kOversized);
  EXPECT_FALSE(check(filter, "odin.token.X", &good_type, std::string(16, '1')).reject);
  EXPECT_EQ(check(filter, "odin.token.X", nullptr, "\"\xff\"").reject,
            ops::IntakeReject::kInvalidUtf8);
  EXPECT_EQ(check(filter, "odin.token.X", nullptr, "\xed\xa0\x80").reject,
            ops::IntakeReject::kInvalidUtf8);  // a surrogate
}

// Issue 12 item 12: a 65,536-sequence window forgot what it had handed over, so at a high rate a
// redelivery after a lost ack went out twice. Whatever the distance, a repeat is a repeat.
TEST(StreamDedupe, RepeatIsCaughtHoweverFarBack) {
  broker::StreamDedupe dedupe;
  const uint64_t handed_over = 300'000;  // over four times the old window
  for (uint64_t seq = 1; seq <= handed_over; ++seq)
    ASSERT_TRUE(dedupe.first_delivery(seq)) << seq;
  for (uint64_t seq : {uint64_t{1}, uint64_t{5}, uint64_t{70'000}, handed_over - 1, handed_over})
    EXPECT_FALSE(dedupe.first_delivery(seq)) << seq;
  EXPECT_TRUE(dedupe.first_delivery(handed_over + 1));
}

TEST(StreamDedupe, EverythingBelowTheNewestIsHandedOverExceptUnreadGaps) {
  broker::StreamDedupe dedupe;
  dedupe.reset(9);  // bound after 9: a redelivery of 9 or below is not ours to send
  EXPECT_FALSE(dedupe.first_delivery(9));
  EXPECT_TRUE(dedupe.first_delivery(10));
  // 11-19 were read back from the stream by the caller: handed over.
  EXPECT_TRUE(dedupe.first_delivery(20));
  EXPECT_EQ(dedupe.last(), 20u);
  EXPECT_FALSE(dedupe.first_delivery(15));
  // 21-29 could not be read back: a redelivery of one of them goes out, once.
  EXPECT_TRUE(dedupe.first_delivery(30));
  dedupe.not_handed_over(21, 29);
  EXPECT_TRUE(dedupe.first_delivery(25));
  EXPECT_FALSE(dedupe.first_delivery(25));
  EXPECT_TRUE(dedupe.first_delivery(21));
  EXPECT_TRUE(dedupe.first_delivery(29));
  EXPECT_FALSE(dedupe.first_delivery(30));
  EXPECT_EQ(dedupe.open_gaps(), 2u);  // 22-24 and 26-28
  for (uint64_t seq : {22, 23, 24, 26, 27, 28})
    EXPECT_TRUE(dedupe.first_delivery(seq)) << seq;
  EXPECT_EQ(dedupe.open_gaps(), 0u);
  for (uint64_t seq = 9; seq <= 30; ++seq)
    EXPECT_FALSE(dedupe.first_delivery(seq)) << seq;
}

TEST(StreamDedupe, GapsBeyondTheNewestAreNotOpenedAndResetForgetsAll) {
  broker::StreamDedupe dedupe;
  EXPECT_TRUE(dedupe.first_delivery(100));
  dedupe.not_handed_over(150, 160);  // beyond the newest: nothing to open
  EXPECT_EQ(dedupe.open_gaps(), 0u);
  dedupe.not_handed_over(90, 99);
  EXPECT_EQ(dedupe.open_gaps(), 1u);
  EXPECT_TRUE(dedupe.first_delivery(150));  // after the newest: new anyway
  EXPECT_FALSE(dedupe.first_delivery(150));
  // A new stream starts over at its consumer's start: its sequences 1.. are new.
  dedupe.reset(0);
  EXPECT_EQ(dedupe.open_gaps(), 0u);
  EXPECT_TRUE(dedupe.first_delivery(1));
  EXPECT_FALSE(dedupe.first_delivery(1));
}

TEST(StreamDedupe, OpenGapsAreBoundedOldestForgottenFirst) {
  broker::StreamDedupe dedupe;
  uint64_t seq = 0;
  for (size_t i = 0; i < broker::StreamDedupe::kMaxOpenGaps + 10; ++i) {
    seq += 3;
    ASSERT_TRUE(dedupe.first_delivery(seq));
    dedupe.not_handed_over(seq - 2, seq - 2);  // seq - 1 was read back: gaps do not merge
  }
  EXPECT_EQ(dedupe.open_gaps(), broker::StreamDedupe::kMaxOpenGaps);
  EXPECT_FALSE(dedupe.first_delivery(1));  // forgotten: its loss was reported back then
  EXPECT_TRUE(dedupe.first_delivery(seq - 2));
}

TEST(PauseSwitch, PausesAboveAndResumesClearlyBelow) {
  broker::PauseSwitch pause(80);
  EXPECT_DOUBLE_EQ(pause.resume_below(), 70);
  EXPECT_FALSE(pause.update(80));  // at the line: not above it
  EXPECT_TRUE(pause.update(80.5));
  EXPECT_TRUE(pause.paused());
  EXPECT_FALSE(pause.update(75));  // inside the hysteresis band: stays paused
  EXPECT_FALSE(pause.update(90));
  EXPECT_TRUE(pause.paused());
  EXPECT_TRUE(pause.update(69.9));
  EXPECT_FALSE(pause.paused());
  broker::PauseSwitch low(5);
  EXPECT_DOUBLE_EQ(low.resume_below(), 4);
}

TEST(RatePacer, UnlimitedTakesAll) {
  broker::RatePacer pacer(0);
  EXPECT_TRUE(pacer.unlimited());
  EXPECT_EQ(pacer.take(1000, 1), 1000u);
  EXPECT_EQ(pacer.wait_ns(1), 0);
}

TEST(RatePacer, HoldsTheRateOverTime) {
  broker::RatePacer pacer(100);  // burst: 10
  int64_t now = 1'000'000'000;
  EXPECT_EQ(pacer.take(256, now), 10u);
  EXPECT_EQ(pacer.take(256, now), 0u);
  EXPECT_EQ(pacer.wait_ns(now), 10'000'000);  // one message every 10 ms
  size_t taken = 0;
  for (int step = 0; step < 1000; ++step) {  // one second in 1 ms steps
    now += 1'000'000;
    taken += pacer.take(256, now);
  }
  EXPECT_EQ(taken, 100u);
  pacer.give_back(5);
  EXPECT_EQ(pacer.take(256, now), 5u);
  pacer.give_back(1000);  // never beyond the burst
  EXPECT_EQ(pacer.take(256, now), 10u);
}

}  // namespace
}  // namespace odin
