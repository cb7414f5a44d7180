// Unit tests of envelope encoding: the shared tail, the per-recipient prefix, and the frame they
// make together.
#include <gtest/gtest.h>
#include <simdjson.h>

#include "core/envelope.hpp"

namespace odin {
namespace {

std::string frame_payload(const std::string& frame, size_t& header) {
  const auto len7 = static_cast<uint8_t>(frame[1]) & 0x7f;
  header = len7 < 126 ? 2 : (len7 == 126 ? 4 : 10);
  return frame.substr(header);
}

TEST(Envelope, TailHasKeysInContractOrder) {
  std::string tail;
  core::encode_envelope_tail(tail, 0, 1696284000000, "price:update", "BTCUSD", R"({"price":50000})",
                             true);
  EXPECT_EQ(
      tail,
      R"("ts":1696284000000,"type":"price:update","channel":"BTCUSD","data":{"price":50000}})");
}

TEST(Envelope, StreamPositionComesRightAfterSeq) {
  std::string tail;
  core::encode_envelope_tail(tail, 4711, 7, "t", "BTCUSD", "1", true);
  EXPECT_EQ(tail, R"("pos":4711,"ts":7,"type":"t","channel":"BTCUSD","data":1})");
  char prefix[core::kMaxDataPrefixBytes];
  const size_t n = core::encode_data_prefix(prefix, 12, 0, tail.size());
  const std::string frame = std::string(prefix, n) + tail;
  EXPECT_NE(frame.find(R"({"seq":12,"pos":4711,"ts":7,)"), std::string::npos);
}

TEST(Envelope, NonJsonPayloadBecomesAJsonString) {
  std::string tail;
  core::encode_envelope_tail(tail, 0, 5, "message", "c", "he said \"hi\"\n", false);
  EXPECT_EQ(tail, R"("ts":5,"type":"message","channel":"c","data":"he said \"hi\"\n"})");
}

TEST(Envelope, PrefixPlusTailIsOneValidTextFrame) {
  for (size_t data_size : {10u, 100u, 200u, 70000u}) {
    std::string data = "\"" + std::string(data_size, 'x') + "\"";
    std::string tail;
    core::encode_envelope_tail(tail, 0, 42, "t", "ch", data, true);
    for (uint64_t seq : {uint64_t{1}, uint64_t{9}, uint64_t{10}, uint64_t{123456789}, UINT64_MAX}) {
      for (uint32_t conflated : {0u, 1u, 99u, UINT32_MAX}) {
        char prefix[core::kMaxDataPrefixBytes];
        const size_t n = core::encode_data_prefix(prefix, seq, conflated, tail.size());
        ASSERT_LE(n, core::kMaxDataPrefixBytes);
        std::string frame(prefix, n);
        frame += tail;
        EXPECT_EQ(static_cast<uint8_t>(frame[0]), 0x81);  // FIN + text
        size_t header = 0;
        const std::string payload = frame_payload(frame, header);
        uint64_t declared = static_cast<uint8_t>(frame[1]) & 0x7f;
        if (declared == 126) {
          declared =
              (uint64_t{static_cast<uint8_t>(frame[2])} << 8) | static_cast<uint8_t>(frame[3]);
        } else if (declared == 127) {
          declared = 0;
          for (int i = 0; i < 8; ++i)
            declared = (declared << 8) | static_cast<uint8_t>(frame[2 + i]);
        }
        ASSERT_EQ(declared, payload.size());
        simdjson::dom::parser parser;
        simdjson::dom::element doc;
        ASSERT_FALSE(parser.parse(payload).get(doc)) << payload.substr(0, 80);
        uint64_t parsed_seq = 0;
        ASSERT_FALSE(doc["seq"].get(parsed_seq));
        EXPECT_EQ(parsed_seq, seq);
        // `conflated` right after seq, only when not 0 (a v1 frame is unchanged).
        const std::string conflated_key =
            conflated ? "\"conflated\":" + std::to_string(conflated) + "," : "";
        EXPECT_EQ(payload.rfind(
                      "{\"seq\":" + std::to_string(seq) + "," + conflated_key + "\"ts\":42,", 0),
                  0u);
        uint64_t parsed_conflated = 0;
        EXPECT_EQ(doc["conflated"].get(parsed_conflated) == simdjson::SUCCESS, conflated != 0);
        if (conflated) {
          EXPECT_EQ(parsed_conflated, conflated);
        }
      }
    }
  }
}

}  // namespace
}  // namespace odin
