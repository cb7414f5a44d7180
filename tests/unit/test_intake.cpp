// The NATS intake's decisions (broker/intake.hpp): which broker messages may reach clients,
// redelivery dedupe, the CPU pause switch and the intake rate pacer.
#include "broker/intake.hpp"

#include <gtest/gtest.h>

#include <string>

namespace odin {
namespace {

struct Checked {
  std::optional<IntakeReject> reject;
  IngestItem item;
};

Checked check(IntakeFilter& filter, std::string_view subject, const std::string_view* type,
              std::string_view payload) {
  Checked c;
  c.reject = filter.check(subject, type, payload, c.item);
  return c;
}

TEST(IntakeFilter, ChannelIsTheRestOfTheSubjectAndTypeComesFromTheHeader) {
  IntakeFilter filter("odin.token.", 1024);
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
  IntakeFilter filter("p.", 1024);
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
  IntakeFilter filter("odin.token.", 16);
  const std::string_view good_type = "t";
  const std::string long_type(129, 't');
  const std::string_view too_long = long_type;
  const std::string_view empty_type = "";
  const std::string_view bad_utf8_type = "\xc3";
  EXPECT_EQ(check(filter, "other.BTC", nullptr, "1").reject, IntakeReject::kBadSubject);
  EXPECT_EQ(check(filter, "odin.token.", nullptr, "1").reject, IntakeReject::kBadSubject);
  EXPECT_EQ(check(filter, "odin.token.a/b", nullptr, "1").reject, IntakeReject::kBadSubject);
  EXPECT_EQ(check(filter, "odin.token." + std::string(129, 'x'), nullptr, "1").reject,
            IntakeReject::kBadSubject);
  EXPECT_EQ(check(filter, "odin.token.X", &too_long, "1").reject, IntakeReject::kBadType);
  EXPECT_EQ(check(filter, "odin.token.X", &empty_type, "1").reject, IntakeReject::kBadType);
  EXPECT_EQ(check(filter, "odin.token.X", &bad_utf8_type, "1").reject, IntakeReject::kBadType);
  EXPECT_EQ(check(filter, "odin.token.X", &good_type, std::string(17, '1')).reject,
            IntakeReject::kOversized);
  EXPECT_FALSE(check(filter, "odin.token.X", &good_type, std::string(16, '1')).reject);
  EXPECT_EQ(check(filter, "odin.token.X", nullptr, "\"\xff\"").reject, IntakeReject::kInvalidUtf8);
  EXPECT_EQ(check(filter, "odin.token.X", nullptr, "\xed\xa0\x80").reject,
            IntakeReject::kInvalidUtf8);  // a surrogate
}

TEST(StreamDedupe, RepeatsAreCaughtAndLateFirstDeliveriesPass) {
  StreamDedupe dedupe(4);
  EXPECT_TRUE(dedupe.first_delivery(10));
  EXPECT_TRUE(dedupe.first_delivery(12));
  EXPECT_FALSE(dedupe.first_delivery(10));
  EXPECT_TRUE(dedupe.first_delivery(11));  // out of order but never seen: delivered
  EXPECT_FALSE(dedupe.first_delivery(11));
  EXPECT_TRUE(dedupe.first_delivery(13));
  EXPECT_TRUE(dedupe.first_delivery(14));  // window of 4: 10 is forgotten
  EXPECT_EQ(dedupe.remembered(), 4u);
  EXPECT_FALSE(dedupe.first_delivery(14));
  EXPECT_TRUE(dedupe.first_delivery(10));
}

TEST(PauseSwitch, PausesAboveAndResumesClearlyBelow) {
  PauseSwitch pause(80);
  EXPECT_DOUBLE_EQ(pause.resume_below(), 70);
  EXPECT_FALSE(pause.update(80));  // at the line: not above it
  EXPECT_TRUE(pause.update(80.5));
  EXPECT_TRUE(pause.paused());
  EXPECT_FALSE(pause.update(75));  // inside the hysteresis band: stays paused
  EXPECT_FALSE(pause.update(90));
  EXPECT_TRUE(pause.paused());
  EXPECT_TRUE(pause.update(69.9));
  EXPECT_FALSE(pause.paused());
  PauseSwitch low(5);
  EXPECT_DOUBLE_EQ(low.resume_below(), 4);
}

TEST(RatePacer, UnlimitedTakesAll) {
  RatePacer pacer(0);
  EXPECT_TRUE(pacer.unlimited());
  EXPECT_EQ(pacer.take(1000, 1), 1000u);
  EXPECT_EQ(pacer.wait_ns(1), 0);
}

TEST(RatePacer, HoldsTheRateOverTime) {
  RatePacer pacer(100);  // burst: 10
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
