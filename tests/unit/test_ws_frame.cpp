// Unit tests of RFC 6455 framing: the encoder, and every rule the reader enforces with the close
// code it must answer with.
#include <gtest/gtest.h>

#include <random>

#include "ws/frame.hpp"

namespace odin::ws {
namespace {

// Builds a client frame: masked unless told otherwise.
std::string client_frame(uint8_t first_byte, std::string_view payload, bool masked = true,
                         int force_len_bytes = 0) {
  std::string f;
  f.push_back(static_cast<char>(first_byte));
  const uint8_t mask_bit = masked ? 0x80 : 0;
  const size_t n = payload.size();
  if ((n < 126 && force_len_bytes == 0) || force_len_bytes == 1) {
    f.push_back(static_cast<char>(mask_bit | n));
  } else if ((n <= 0xFFFF && force_len_bytes == 0) || force_len_bytes == 2) {
    f.push_back(static_cast<char>(mask_bit | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xFF));
  } else {
    f.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i)
      f.push_back(static_cast<char>((uint64_t{n} >> (8 * i)) & 0xFF));
  }
  const char mask[4] = {0x12, 0x34, 0x56, 0x78};
  if (masked) f.append(mask, 4);
  for (size_t i = 0; i < n; ++i)
    f.push_back(masked ? static_cast<char>(payload[i] ^ mask[i % 4]) : payload[i]);
  return f;
}

struct Recorder : FrameHandler {
  std::vector<std::string> texts, pings, pongs;
  int close_code = -1;
  std::string close_reason;
  bool stop_after_text = false;
  bool on_text(std::string_view m) override {
    texts.emplace_back(m);
    return !stop_after_text;
  }
  bool on_ping(std::string_view p) override {
    pings.emplace_back(p);
    return true;
  }
  bool on_pong(std::string_view p) override {
    pongs.emplace_back(p);
    return true;
  }
  void on_close(uint16_t code, std::string_view reason) override {
    close_code = code;
    close_reason = reason;
  }
};

std::optional<ReadError> feed(MessageReader& r, std::string bytes, FrameHandler& h) {
  return r.feed(std::span<char>(bytes.data(), bytes.size()), h);
}

uint16_t error_code(std::string bytes, uint32_t max = 4096) {
  MessageReader r(max);
  Recorder h;
  auto e = feed(r, std::move(bytes), h);
  return e ? e->close_code : 0;
}

TEST(FrameEncoder, HeaderSizesAtTheBoundaries) {
  for (uint64_t n : {0ull, 125ull, 126ull, 65535ull, 65536ull, 1ull << 40}) {
    char h[kMaxFrameHeaderBytes];
    const size_t size = encode_frame_header(h, Opcode::kText, n);
    EXPECT_EQ(size, frame_header_size(n));
    EXPECT_EQ(static_cast<uint8_t>(h[0]), 0x81);
    EXPECT_EQ(static_cast<uint8_t>(h[1]) & 0x80, 0);  // servers never mask
    uint64_t decoded = static_cast<uint8_t>(h[1]);
    if (decoded == 126)
      decoded = (uint64_t{static_cast<uint8_t>(h[2])} << 8) | static_cast<uint8_t>(h[3]);
    if (decoded == 127) {
      decoded = 0;
      for (int i = 0; i < 8; ++i)
        decoded = (decoded << 8) | static_cast<uint8_t>(h[2 + i]);
    }
    EXPECT_EQ(decoded, n);
  }
  EXPECT_EQ(frame_header_size(125), 2u);
  EXPECT_EQ(frame_header_size(126), 4u);
  EXPECT_EQ(frame_header_size(65535), 4u);
  EXPECT_EQ(frame_header_size(65536), 10u);
}

TEST(FrameEncoder, CloseFrameCutsLongReasonsOnACharacterBoundary) {
  std::string out;
  std::string reason;
  for (int i = 0; i < 100; ++i)
    reason += "\xC3\xA9";  // 200 bytes of 'é'
  append_close_frame(out, 1001, reason);
  ASSERT_LE(out.size() - 2, kMaxControlPayload);
  EXPECT_EQ(static_cast<uint8_t>(out[0]), 0x88);
  EXPECT_EQ((static_cast<uint8_t>(out[2]) << 8) | static_cast<uint8_t>(out[3]), 1001);
  EXPECT_TRUE(is_valid_utf8(std::string_view(out).substr(4)));
}

TEST(FrameReader, TextPingPongAndWholeFramesInOneRead) {
  MessageReader r(4096);
  Recorder h;
  std::string bytes = client_frame(0x81, "hello") + client_frame(0x89, "p1") +
                      client_frame(0x8A, "") + client_frame(0x81, "world");
  EXPECT_FALSE(feed(r, bytes, h));
  EXPECT_EQ(h.texts, (std::vector<std::string>{"hello", "world"}));
  EXPECT_EQ(h.pings, (std::vector<std::string>{"p1"}));
  EXPECT_EQ(h.pongs.size(), 1u);
  EXPECT_EQ(r.buffered_bytes(), 0u);
}

TEST(FrameReader, PayloadSizesAcrossAllHeaderForms) {
  for (size_t n : {0u, 125u, 126u, 4000u}) {
    MessageReader r(70000);
    Recorder h;
    std::string payload(n, 'a');
    EXPECT_FALSE(feed(r, client_frame(0x81, payload), h));
    ASSERT_EQ(h.texts.size(), 1u);
    EXPECT_EQ(h.texts[0], payload);
  }
  for (size_t n : {65535u, 65536u}) {
    MessageReader r(70000);
    Recorder h;
    std::string payload(n, 'b');
    EXPECT_FALSE(feed(r, client_frame(0x81, payload), h));
    ASSERT_EQ(h.texts.size(), 1u);
    EXPECT_EQ(h.texts[0].size(), n);
  }
}

TEST(FrameReader, ByteByByteDeliveryAndBuffersReleased) {
  MessageReader r(4096);
  Recorder h;
  std::string bytes = client_frame(0x01, "frag-") + client_frame(0x89, "ping") +
                      client_frame(0x80, "mented") + client_frame(0x81, std::string(300, 'z'));
  for (char c : bytes) {
    std::string one(1, c);
    ASSERT_FALSE(feed(r, one, h));
  }
  EXPECT_EQ(h.texts, (std::vector<std::string>{"frag-mented", std::string(300, 'z')}));
  EXPECT_EQ(h.pings, (std::vector<std::string>{"ping"}));
  EXPECT_EQ(r.buffered_bytes(), 0u);
}

TEST(FrameReader, RandomSplitsGiveTheSameMessages) {
  std::string bytes;
  std::vector<std::string> expected;
  for (int i = 0; i < 50; ++i) {
    expected.push_back(
        std::string(static_cast<size_t>(i * 37 % 700), static_cast<char>('a' + i % 26)));
    bytes += client_frame(0x81, expected.back());
  }
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    MessageReader r(4096);
    Recorder h;
    size_t pos = 0;
    while (pos < bytes.size()) {
      const size_t n = std::min<size_t>(bytes.size() - pos, 1 + rng() % 900);
      ASSERT_FALSE(feed(r, bytes.substr(pos, n), h));
      pos += n;
    }
    EXPECT_EQ(h.texts, expected);
  }
}

TEST(FrameReader, ProtocolErrors) {
  EXPECT_EQ(error_code(client_frame(0x81, "x", false)), close_code::kProtocolError);  // unmasked
  EXPECT_EQ(error_code(client_frame(0xC1, "x")), close_code::kProtocolError);         // RSV1
  EXPECT_EQ(error_code(client_frame(0xA1, "x")), close_code::kProtocolError);         // RSV2
  EXPECT_EQ(error_code(client_frame(0x91, "x")), close_code::kProtocolError);         // RSV3
  for (uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    EXPECT_EQ(error_code(client_frame(static_cast<uint8_t>(0x80 | op), "")),
              close_code::kProtocolError)
        << int(op);
  }
  EXPECT_EQ(error_code(client_frame(0x89, std::string(126, 'p'))), close_code::kProtocolError);
  EXPECT_EQ(error_code(client_frame(0x09, "p")), close_code::kProtocolError);  // fragmented ping
  EXPECT_EQ(error_code(client_frame(0x80, "x")), close_code::kProtocolError);  // lone continuation
  EXPECT_EQ(error_code(client_frame(0x01, "a") + client_frame(0x81, "b")),
            close_code::kProtocolError);
  std::string huge = client_frame(0x81, "", true);
  huge[1] = static_cast<char>(0x80 | 127);
  huge.insert(2, std::string("\x80\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(error_code(huge), close_code::kProtocolError);  // 64-bit length, top bit set
}

TEST(FrameReader, BinaryIsUnsupportedData) {
  EXPECT_EQ(error_code(client_frame(0x82, "bin")), close_code::kUnsupportedData);
  EXPECT_EQ(error_code(client_frame(0x02, "bin")), close_code::kUnsupportedData);
}

TEST(FrameReader, TooBigSingleFrameAndReassembled) {
  EXPECT_EQ(error_code(client_frame(0x81, std::string(100, 'a')), 100), 0);
  EXPECT_EQ(error_code(client_frame(0x81, std::string(101, 'a')), 100), close_code::kTooBig);
  EXPECT_EQ(
      error_code(
          client_frame(0x01, std::string(60, 'a')) + client_frame(0x80, std::string(40, 'a')), 100),
      0);
  EXPECT_EQ(
      error_code(
          client_frame(0x01, std::string(60, 'a')) + client_frame(0x80, std::string(41, 'a')), 100),
      close_code::kTooBig);
  // Decided from the header alone: only the header has arrived.
  std::string head = client_frame(0x81, std::string(5000, 'a')).substr(0, 8);
  EXPECT_EQ(error_code(head, 4096), close_code::kTooBig);
}

TEST(FrameReader, InvalidUtf8FailsFastAcrossFragments) {
  EXPECT_EQ(error_code(client_frame(0x81, "\xC0\xAF")), close_code::kInvalidPayload);  // overlong
  EXPECT_EQ(error_code(client_frame(0x81, "\xED\xA0\x80")),
            close_code::kInvalidPayload);  // surrogate
  EXPECT_EQ(error_code(client_frame(0x81, "\xF4\x90\x80\x80")), close_code::kInvalidPayload);
  EXPECT_EQ(error_code(client_frame(0x81, "\xF4\x8F\xBF\xBF")), 0);  // U+10FFFF is fine
  // A character split across fragments is fine...
  EXPECT_EQ(error_code(client_frame(0x01, "\xE2\x82") + client_frame(0x80, "\xAC")), 0);
  // ...an invalid byte fails at its own fragment, before the message ends.
  MessageReader r(4096);
  Recorder h;
  EXPECT_FALSE(feed(r, client_frame(0x01, "ok"), h));
  auto e = feed(r, client_frame(0x00, "\xFF"), h);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->close_code, close_code::kInvalidPayload);
  // Truncated at the end of the message.
  EXPECT_EQ(error_code(client_frame(0x01, "a") + client_frame(0x80, "\xE2\x82")),
            close_code::kInvalidPayload);
}

TEST(FrameReader, CloseFrames) {
  {
    MessageReader r(4096);
    Recorder h;
    EXPECT_FALSE(feed(
        r, client_frame(0x88, std::string("\x03\xE8", 2) + "bye") + client_frame(0x81, "after"),
        h));
    EXPECT_EQ(h.close_code, 1000);
    EXPECT_EQ(h.close_reason, "bye");
    EXPECT_TRUE(h.texts.empty());  // nothing is read after a close frame
  }
  {
    MessageReader r(4096);
    Recorder h;
    EXPECT_FALSE(feed(r, client_frame(0x88, ""), h));
    EXPECT_EQ(h.close_code, close_code::kNoStatus);
  }
  EXPECT_EQ(error_code(client_frame(0x88, "\x03")), close_code::kProtocolError);
  EXPECT_EQ(error_code(client_frame(0x88, std::string("\x03\xED", 2))),
            close_code::kProtocolError);  // 1005
  EXPECT_EQ(error_code(client_frame(0x88, std::string("\x03\xE7", 2))),
            close_code::kProtocolError);  // 999
  EXPECT_EQ(error_code(client_frame(0x88, std::string("\x03\xE8", 2) + "\xFF")),
            close_code::kInvalidPayload);
}

TEST(CloseCodes, ValidityTable) {
  for (uint16_t ok :
       {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000, 4008, 4999}) {
    EXPECT_TRUE(is_valid_close_code(ok)) << ok;
  }
  for (uint16_t bad : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000}) {
    EXPECT_FALSE(is_valid_close_code(bad)) << bad;
  }
}

TEST(FrameReader, HandlerCanStopReading) {
  MessageReader r(4096);
  Recorder h;
  h.stop_after_text = true;
  EXPECT_FALSE(feed(r, client_frame(0x81, "one") + client_frame(0x81, "two"), h));
  EXPECT_EQ(h.texts.size(), 1u);
}

TEST(FrameReader, IdleReaderIsSmallAndHoldsNothing) {
  MessageReader r(4096);
  EXPECT_EQ(r.buffered_bytes(), 0u);
  EXPECT_LE(sizeof(MessageReader), 96u);
}

}  // namespace
}  // namespace odin::ws
