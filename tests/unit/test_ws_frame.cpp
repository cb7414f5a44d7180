// Unit tests of RFC 6455 framing: the encoder, and every rule the reader enforces with the exact
// close code it must answer with, plus the reader's memory behaviour (in place, released, bounded),
// and compressed messages (RFC 7692) once a reader accepts them.
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "ws/deflate.hpp"
#include "ws/frame.hpp"

namespace odin::ws {
namespace {

constexpr char kMask[4] = {0x12, 0x34, 0x56, 0x78};

// How a client frame spells its payload length.
enum class Len { kAuto, k7, k16, k64 };

// A client frame built byte by byte (independently of encode_frame_header): masked unless told
// otherwise, `first` is FIN|RSV|opcode.
std::string client_frame(uint8_t first, std::string_view payload, bool masked = true,
                         Len form = Len::kAuto) {
  const uint64_t n = payload.size();
  if (form == Len::kAuto) form = n < 126 ? Len::k7 : (n <= 0xFFFF ? Len::k16 : Len::k64);
  std::string f;
  f.push_back(static_cast<char>(first));
  const uint8_t mask_bit = masked ? 0x80 : 0;
  if (form == Len::k7) {
    f.push_back(static_cast<char>(mask_bit | n));
  } else if (form == Len::k16) {
    f.push_back(static_cast<char>(mask_bit | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xFF));
  } else {
    f.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i)
      f.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  }
  if (masked) f.append(kMask, 4);
  for (size_t i = 0; i < n; ++i)
    f.push_back(masked ? static_cast<char>(payload[i] ^ kMask[i % 4]) : payload[i]);
  return f;
}

std::string text(std::string_view p) {
  return client_frame(0x81, p);
}
std::string first_fragment(std::string_view p) {
  return client_frame(0x01, p);
}
std::string middle_fragment(std::string_view p) {
  return client_frame(0x00, p);
}
std::string last_fragment(std::string_view p) {
  return client_frame(0x80, p);
}
std::string ping(std::string_view p) {
  return client_frame(0x89, p);
}
std::string pong(std::string_view p) {
  return client_frame(0x8A, p);
}
std::string close_frame(uint16_t code, std::string_view reason = {}) {
  std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  payload.append(reason);
  return client_frame(0x88, payload);
}

// Records every callback as one string, in order.
struct Recorder : FrameHandler {
  std::vector<std::string> events;
  std::vector<const char*> text_data;  // where each message's bytes were
  int stop_at_event = -1;              // the callback with this index returns false
  std::function<void()> during_callback;

  // The hook runs before the view is read, so a view the hook invalidates is caught (ASan).
  bool record(const std::string& kind, std::string_view data) {
    if (during_callback) during_callback();
    events.push_back(kind + std::string(data));
    return static_cast<int>(events.size()) - 1 != stop_at_event;
  }
  bool on_text(std::string_view m) override {
    text_data.push_back(m.data());
    return record("text:", m);
  }
  bool on_ping(std::string_view p) override { return record("ping:", p); }
  bool on_pong(std::string_view p) override { return record("pong:", p); }
  void on_close(uint16_t code, std::string_view reason) override {
    record("close:" + std::to_string(code) + ":", reason);
  }
};

std::optional<ReadError> feed(MessageReader& r, std::string bytes, FrameHandler& h) {
  return r.feed(std::span<char>(bytes.data(), bytes.size()), h);
}

// The close code a fresh reader answers `bytes` with (0: none), fed in one call.
uint16_t error_code(std::string bytes, uint32_t max = 4096) {
  MessageReader r(max);
  Recorder h;
  auto e = feed(r, std::move(bytes), h);
  return e ? e->close_code : 0;
}

// Same, fed one byte at a time: the verdict must not depend on how the bytes arrive.
uint16_t error_code_bytewise(const std::string& bytes, uint32_t max = 4096) {
  MessageReader r(max);
  Recorder h;
  for (char c : bytes) {
    if (auto e = feed(r, std::string(1, c), h)) return e->close_code;
  }
  return 0;
}

uint64_t decode_length(const char* h) {
  uint64_t n = static_cast<uint8_t>(h[1]) & 0x7F;
  if (n == 126) return (uint64_t{static_cast<uint8_t>(h[2])} << 8) | static_cast<uint8_t>(h[3]);
  if (n == 127) {
    n = 0;
    for (int i = 0; i < 8; ++i)
      n = (n << 8) | static_cast<uint8_t>(h[2 + i]);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Encoder

TEST(FrameEncoder, HeaderSizesAndLengthsAtTheBoundaries) {
  struct Case {
    uint64_t len;
    size_t size;
    uint8_t len7;
  };
  for (const Case c :
       {Case{0, 2, 0}, Case{125, 2, 125}, Case{126, 4, 126}, Case{65535, 4, 126},
        Case{65536, 10, 127}, Case{uint64_t{1} << 32, 10, 127}, Case{uint64_t{1} << 40, 10, 127}}) {
    char h[kMaxFrameHeaderBytes] = {};
    const size_t size = encode_frame_header(h, Opcode::kText, c.len);
    EXPECT_EQ(size, c.size) << c.len;
    EXPECT_EQ(frame_header_size(c.len), c.size) << c.len;
    EXPECT_EQ(static_cast<uint8_t>(h[0]), 0x81) << c.len;    // FIN, no RSV, text
    EXPECT_EQ(static_cast<uint8_t>(h[1]), c.len7) << c.len;  // mask bit clear: servers never mask
    EXPECT_EQ(decode_length(h), c.len) << c.len;
  }
}

TEST(FrameEncoder, OpcodeInTheFirstByte) {
  for (Opcode op : {Opcode::kContinuation, Opcode::kText, Opcode::kBinary, Opcode::kClose,
                    Opcode::kPing, Opcode::kPong}) {
    char h[kMaxFrameHeaderBytes];
    encode_frame_header(h, op, 3);
    EXPECT_EQ(static_cast<uint8_t>(h[0]), 0x80 | static_cast<uint8_t>(op));
  }
}

TEST(FrameEncoder, AppendFrameIsHeaderThenPayloadAfterExistingBytes) {
  for (size_t n : {0u, 125u, 126u, 65535u, 65536u}) {
    std::string out = "prefix";
    const std::string payload(n, 'x');
    append_frame(out, Opcode::kPong, payload);
    const size_t header = frame_header_size(n);
    ASSERT_EQ(out.size(), 6 + header + n) << n;
    EXPECT_EQ(out.substr(0, 6), "prefix");
    EXPECT_EQ(static_cast<uint8_t>(out[6]), 0x8A);
    EXPECT_EQ(decode_length(out.data() + 6), n);
    EXPECT_EQ(out.substr(6 + header), payload);
  }
}

std::string close_payload(const std::string& frame) {
  EXPECT_EQ(static_cast<uint8_t>(frame[0]), 0x88);
  EXPECT_EQ(static_cast<size_t>(static_cast<uint8_t>(frame[1])), frame.size() - 2);
  return frame.substr(2);
}

TEST(FrameEncoder, CloseFrameCodeAndReason) {
  std::string out;
  append_close_frame(out, 4008, "slow consumer");
  EXPECT_EQ(close_payload(out), std::string("\x0F\xA8", 2) + "slow consumer");
  out.clear();
  append_close_frame(out, 1000, "");
  EXPECT_EQ(close_payload(out), std::string("\x03\xE8", 2));
  out.clear();
  append_close_frame(out, 1000, std::string(123, 'r'));  // exactly fits
  EXPECT_EQ(close_payload(out).size(), 125u);
  out.clear();
  append_close_frame(out, 1000, std::string(400, 'r'));
  EXPECT_EQ(close_payload(out), std::string("\x03\xE8", 2) + std::string(123, 'r'));
}

TEST(FrameEncoder, CloseReasonIsCutOnACharacterBoundary) {
  // A character of every width straddling the 123-byte cut, at every offset.
  for (std::string_view ch : {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"}) {
    for (size_t ascii = 118; ascii <= 123; ++ascii) {
      const std::string reason = std::string(ascii, 'a') + std::string(ch) + "tail";
      std::string out;
      append_close_frame(out, 1001, reason);
      const std::string payload = close_payload(out);
      ASSERT_LE(payload.size(), kMaxControlPayload);
      const std::string_view kept = std::string_view(payload).substr(2);
      EXPECT_TRUE(is_valid_utf8(kept)) << ascii << " " << ch.size();
      // The longest prefix that fits and is whole.
      size_t longest = std::min<size_t>(reason.size(), 123);
      while (!is_valid_utf8(std::string_view(reason).substr(0, longest)))
        --longest;
      EXPECT_EQ(kept, std::string_view(reason).substr(0, longest)) << ascii << " " << ch.size();
    }
  }
}

// What a server frame looks like when a client sends it: mask bit, key, masked payload.
std::string as_client_frame(const std::string& server_frame) {
  const size_t header = frame_header_size(decode_length(server_frame.data()));
  std::string f = server_frame.substr(0, header);
  f[1] = static_cast<char>(f[1] | 0x80);
  f.append(kMask, 4);
  for (size_t i = header; i < server_frame.size(); ++i)
    f.push_back(static_cast<char>(server_frame[i] ^ kMask[(i - header) % 4]));
  return f;
}

TEST(FrameEncoder, EncodedFramesParseBackAtEveryHeaderSize) {
  for (size_t n : {125u, 126u, 65535u, 65536u}) {
    std::string payload(n, 'a');
    for (size_t i = 0; i < n; ++i)
      payload[i] = static_cast<char>('a' + i % 26);
    std::string frame;
    append_frame(frame, Opcode::kText, payload);
    MessageReader r(65536);
    Recorder h;
    ASSERT_FALSE(feed(r, as_client_frame(frame), h)) << n;
    ASSERT_EQ(h.events.size(), 1u) << n;
    EXPECT_EQ(h.events[0], "text:" + payload) << n;
  }
}

// ---------------------------------------------------------------------------------------------
// Reader: normal operation and memory

TEST(FrameReader, WholeFramesAreHandledInPlace) {
  MessageReader r(4096);
  Recorder h;
  std::string bytes = text("hello") + ping("p1") + pong("") + text("wörld");
  EXPECT_FALSE(r.feed(std::span<char>(bytes.data(), bytes.size()), h));
  EXPECT_EQ(h.events, (std::vector<std::string>{"text:hello", "ping:p1", "pong:", "text:wörld"}));
  // Both messages were read where they arrived: no copy.
  for (const char* p : h.text_data) {
    EXPECT_GE(p, bytes.data());
    EXPECT_LT(p, bytes.data() + bytes.size());
  }
  EXPECT_EQ(r.buffered_bytes(), 0u);
  EXPECT_EQ(r.heap_bytes(), 0u);
}

TEST(FrameReader, PayloadSizesAcrossAllHeaderForms) {
  for (size_t n : {0u, 1u, 125u, 126u, 127u, 65535u, 65536u}) {
    MessageReader r(65536);
    Recorder h;
    const std::string payload(n, 'b');
    std::string bytes = text(payload);
    EXPECT_EQ(bytes.size(), frame_header_size(n) + 4 + n);
    ASSERT_FALSE(r.feed(std::span<char>(bytes.data(), bytes.size()), h)) << n;
    ASSERT_EQ(h.events.size(), 1u) << n;
    EXPECT_EQ(h.events[0], "text:" + payload) << n;
    EXPECT_EQ(r.heap_bytes(), 0u) << n;
  }
}

TEST(FrameReader, NonMinimalLengthEncodingsAreAccepted) {
  for (Len form : {Len::k16, Len::k64}) {
    MessageReader r(4096);
    Recorder h;
    EXPECT_FALSE(
        feed(r, client_frame(0x81, "hi", true, form) + client_frame(0x89, "p", true, form), h));
    EXPECT_EQ(h.events, (std::vector<std::string>{"text:hi", "ping:p"}));
  }
}

TEST(FrameReader, EmptyMessagesAndFragments) {
  MessageReader r(4096);
  Recorder h;
  EXPECT_FALSE(feed(r, text(""), h));
  EXPECT_FALSE(feed(r, first_fragment("") + last_fragment(""), h));
  EXPECT_FALSE(feed(r, first_fragment("") + middle_fragment("") + last_fragment("abc"), h));
  EXPECT_EQ(h.events, (std::vector<std::string>{"text:", "text:", "text:abc"}));
  EXPECT_EQ(r.heap_bytes(), 0u);
}

TEST(FrameReader, FragmentedMessageWithInterleavedControlFrames) {
  MessageReader r(4096);
  Recorder h;
  ASSERT_FALSE(feed(r, first_fragment("Hel"), h));
  EXPECT_EQ(r.buffered_bytes(), 3u);
  ASSERT_FALSE(feed(r, ping("p"), h));  // delivered at once, mid-message
  EXPECT_EQ(h.events, (std::vector<std::string>{"ping:p"}));
  ASSERT_FALSE(feed(r, middle_fragment("lo, ") + pong("q"), h));
  EXPECT_EQ(r.buffered_bytes(), 7u);
  ASSERT_FALSE(feed(r, last_fragment("world") + text("next"), h));
  EXPECT_EQ(h.events,
            (std::vector<std::string>{"ping:p", "pong:q", "text:Hello, world", "text:next"}));
  // The fragmented message's memory went with it.
  EXPECT_EQ(r.buffered_bytes(), 0u);
  EXPECT_EQ(r.heap_bytes(), 0u);
}

std::string mixed_stream() {
  return text("first") + first_fragment("frag-") + ping("ping!") + middle_fragment("men") +
         pong("") + last_fragment("ted €😀") + text(std::string(300, 'z')) +
         text(std::string(70000 % 4000, 'y')) + first_fragment("\xF0\x9F") +
         last_fragment("\x98\x80") + close_frame(1000, "bye");
}

std::vector<std::string> mixed_events() {
  return {"text:first",
          "ping:ping!",
          "pong:",
          "text:frag-mented €😀",
          "text:" + std::string(300, 'z'),
          "text:" + std::string(70000 % 4000, 'y'),
          "text:😀",
          "close:1000:bye"};
}

TEST(FrameReader, ByteByByteDelivery) {
  MessageReader r(4096);
  Recorder h;
  const std::string bytes = mixed_stream();
  size_t most_held = 0;
  for (char c : bytes) {
    ASSERT_FALSE(feed(r, std::string(1, c), h));
    most_held = std::max(most_held, r.heap_bytes());
  }
  EXPECT_EQ(h.events, mixed_events());
  EXPECT_LE(most_held, 4096u + 14);
  EXPECT_EQ(r.buffered_bytes(), 0u);
  EXPECT_EQ(r.heap_bytes(), 0u);
}

TEST(FrameReader, RandomSplitsGiveTheSameEvents) {
  const std::string bytes = mixed_stream();
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    MessageReader r(4096);
    Recorder h;
    size_t pos = 0;
    const size_t most = 1 + rng() % 64;
    while (pos < bytes.size()) {
      const size_t n = std::min<size_t>(bytes.size() - pos, rng() % (most + 1));
      ASSERT_FALSE(feed(r, bytes.substr(pos, n), h));
      pos += n;
    }
    ASSERT_EQ(h.events, mixed_events()) << round;
    EXPECT_EQ(r.heap_bytes(), 0u);
  }
}

TEST(FrameReader, SplitHeaderIsKeptWithoutHeap) {
  MessageReader r(4096);
  Recorder h;
  const std::string frame = client_frame(0x81, std::string(300, 'q'));  // 8-byte header
  ASSERT_FALSE(feed(r, frame.substr(0, 3), h));
  EXPECT_EQ(r.buffered_bytes(), 3u);
  EXPECT_EQ(r.heap_bytes(), 0u);
  ASSERT_FALSE(feed(r, frame.substr(3), h));  // rest of the header and the whole payload
  EXPECT_EQ(h.events, (std::vector<std::string>{"text:" + std::string(300, 'q')}));
  EXPECT_EQ(r.buffered_bytes(), 0u);
}

TEST(FrameReader, SplitPayloadIsCopiedExactlyOnceAndFreed) {
  MessageReader r(4096);
  Recorder h;
  const std::string frame = text(std::string(1000, 'q'));
  ASSERT_FALSE(feed(r, frame.substr(0, 500), h));
  EXPECT_EQ(r.heap_bytes(), 1000u);  // exactly the payload, allocated once
  EXPECT_EQ(r.buffered_bytes(), 500u - 8);
  ASSERT_FALSE(feed(r, frame.substr(500), h));
  EXPECT_EQ(h.events.size(), 1u);
  EXPECT_EQ(r.heap_bytes(), 0u);
  EXPECT_EQ(r.buffered_bytes(), 0u);
}

TEST(FrameReader, SplitControlFramesAreFreedToo) {
  MessageReader r(4096);
  Recorder h;
  const std::string bytes = ping(std::string(100, 'p')) + pong("q") + close_frame(1000, "end");
  for (size_t i = 0; i < bytes.size(); ++i) {
    ASSERT_FALSE(feed(r, bytes.substr(i, 1), h));
    if (i == 6 + 49) {
      EXPECT_EQ(r.heap_bytes(), 100u);  // half the ping's payload is in
    }
    if (i == 6 + 99) {
      EXPECT_EQ(r.heap_bytes(), 0u);  // its last byte: delivered, freed
    }
  }
  EXPECT_EQ(h.events, (std::vector<std::string>{"ping:" + std::string(100, 'p'), "pong:q",
                                                "close:1000:end"}));
  EXPECT_EQ(r.heap_bytes(), 0u);
}

TEST(FrameReader, HeldMemoryNeverExceedsTheLimit) {
  constexpr uint32_t kMax = 1000;
  // A maximal message in many fragments, split byte by byte.
  std::string bytes;
  for (int i = 0; i < 10; ++i) {
    const std::string part(100, static_cast<char>('a' + i));
    bytes += i == 0 ? first_fragment(part) : (i == 9 ? last_fragment(part) : middle_fragment(part));
  }
  MessageReader r(kMax);
  Recorder h;
  size_t most = 0;
  for (char c : bytes) {
    ASSERT_FALSE(feed(r, std::string(1, c), h));
    most = std::max(most, r.heap_bytes());
    ASSERT_LE(r.buffered_bytes(), kMax + 14);
  }
  EXPECT_LE(most, kMax + 14);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].size(), 5u + kMax);
  EXPECT_EQ(r.heap_bytes(), 0u);

  // The documented exception: a split control frame inside a fragmented message adds its own
  // payload (at most 125 bytes) after the message.
  MessageReader r2(kMax);
  Recorder h2;
  std::string stream =
      first_fragment(std::string(kMax - 1, 'm')) + ping(std::string(125, 'p')) + last_fragment("!");
  most = 0;
  for (char c : stream) {
    ASSERT_FALSE(feed(r2, std::string(1, c), h2));
    most = std::max(most, r2.heap_bytes());
  }
  EXPECT_LE(most, kMax + kMaxControlPayload);
  EXPECT_EQ(h2.events, (std::vector<std::string>{"ping:" + std::string(125, 'p'),
                                                 "text:" + std::string(kMax - 1, 'm') + "!"}));
  EXPECT_EQ(r2.heap_bytes(), 0u);
}

TEST(FrameReader, IdleReaderIsSmallAndHoldsNothing) {
  EXPECT_LE(sizeof(MessageReader), 96u);
  MessageReader r(4096);
  EXPECT_EQ(r.buffered_bytes(), 0u);
  EXPECT_EQ(r.heap_bytes(), 0u);
  Recorder h;
  ASSERT_FALSE(feed(r, first_fragment("abc"), h));
  EXPECT_EQ(r.buffered_bytes(), 3u);
  EXPECT_GT(r.heap_bytes(), 0u);
  ASSERT_FALSE(feed(r, last_fragment("def"), h));
  EXPECT_EQ(h.events, (std::vector<std::string>{"text:abcdef"}));
  EXPECT_EQ(r.buffered_bytes(), 0u);
  EXPECT_EQ(r.heap_bytes(), 0u);
}

TEST(FrameReader, MovedReaderCarriesOnMidMessage) {
  MessageReader r(4096);
  Recorder h;
  const std::string last = last_fragment("world");
  ASSERT_FALSE(feed(r, first_fragment("hello ") + last.substr(0, 8), h));
  MessageReader moved(std::move(r));
  MessageReader target(0);
  target = std::move(moved);
  ASSERT_FALSE(feed(target, last.substr(8), h));
  EXPECT_EQ(h.events, (std::vector<std::string>{"text:hello world"}));
  EXPECT_EQ(target.heap_bytes(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Reader: stopping, errors, release

TEST(FrameReader, HandlerStopWithBytesLeftEndsReading) {
  MessageReader r(4096);
  Recorder h;
  h.stop_at_event = 0;
  EXPECT_FALSE(feed(r, text("one") + text("two"), h));
  EXPECT_EQ(h.events, (std::vector<std::string>{"text:one"}));
  // The rest of that read is gone, so nothing after it can be trusted.
  EXPECT_FALSE(feed(r, text("three"), h));
  EXPECT_EQ(h.events.size(), 1u);
}

TEST(FrameReader, HandlerStopAtTheEndOfAReadKeepsTheStream) {
  MessageReader r(4096);
  Recorder h;
  h.stop_at_event = 1;
  EXPECT_FALSE(feed(r, ping("a") + text("one"), h));
  EXPECT_FALSE(feed(r, close_frame(1000), h));  // e.g. the peer's answer to our close
  EXPECT_EQ(h.events, (std::vector<std::string>{"ping:a", "text:one", "close:1000:"}));
}

TEST(FrameReader, NothingIsReadAfterAnError) {
  MessageReader r(4096);
  Recorder h;
  ASSERT_FALSE(feed(r, first_fragment("abc"), h));
  auto e = feed(r, client_frame(0xC1, "x"), h);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->close_code, close_code::kProtocolError);
  EXPECT_FALSE(e->reason.empty());
  EXPECT_EQ(r.heap_bytes(), 0u);  // the partial message was dropped with the connection
  EXPECT_FALSE(feed(r, text("later"), h));
  EXPECT_TRUE(h.events.empty());
}

TEST(FrameReader, ReleaseBuffersMidMessageFreesAndStops) {
  MessageReader r(4096);
  Recorder h;
  ASSERT_FALSE(feed(r, first_fragment("abc") + last_fragment("def").substr(0, 8), h));
  EXPECT_GT(r.heap_bytes(), 0u);
  r.release_buffers();
  EXPECT_EQ(r.heap_bytes(), 0u);
  EXPECT_EQ(r.buffered_bytes(), 0u);
  EXPECT_FALSE(feed(r, text("x"), h));
  EXPECT_TRUE(h.events.empty());
  // An idle reader stays usable.
  MessageReader idle(4096);
  idle.release_buffers();
  EXPECT_FALSE(feed(idle, text("x"), h));
  EXPECT_EQ(h.events, (std::vector<std::string>{"text:x"}));
}

TEST(FrameReader, HandlerMayReleaseBuffersDuringItsCallback) {
  // The message handed over must stay readable even if the owner frees the reader's buffers
  // from inside the callback (AddressSanitizer would catch a use after free).
  MessageReader r(4096);
  Recorder h;
  h.during_callback = [&] { r.release_buffers(); };
  const std::string bytes = first_fragment(std::string(200, 'a')) + last_fragment("b");
  for (char c : bytes)
    ASSERT_FALSE(feed(r, std::string(1, c), h));
  EXPECT_EQ(h.events, (std::vector<std::string>{"text:" + std::string(200, 'a') + "b"}));

  MessageReader r2(4096);
  Recorder h2;
  h2.during_callback = [&] { r2.release_buffers(); };
  const std::string stream = first_fragment("abc") + ping("pp") + last_fragment("d");
  for (char c : stream)
    ASSERT_FALSE(feed(r2, std::string(1, c), h2));
  // The ping came mid-message: releasing dropped the message, so reading stopped there.
  EXPECT_EQ(h2.events, (std::vector<std::string>{"ping:pp"}));
  EXPECT_EQ(r2.heap_bytes(), 0u);
}

TEST(FrameReader, ProtocolErrors) {
  const auto check = [](const std::string& bytes, uint16_t code, const char* what) {
    EXPECT_EQ(error_code(bytes), code) << what;
    EXPECT_EQ(error_code_bytewise(bytes), code) << what << " (byte by byte)";
  };
  check(client_frame(0x81, "x", false), 1002, "unmasked text");
  check(client_frame(0x89, "x", false), 1002, "unmasked ping");
  check(client_frame(0xC1, "x"), 1002, "RSV1");
  check(client_frame(0xA1, "x"), 1002, "RSV2");
  check(client_frame(0x91, "x"), 1002, "RSV3");
  for (uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    EXPECT_EQ(error_code(client_frame(static_cast<uint8_t>(0x80 | op), "")), 1002) << int(op);
  }
  check(client_frame(0x89, std::string(126, 'p')), 1002, "ping over 125");
  check(client_frame(0x8A, std::string(126, 'p')), 1002, "pong over 125");
  check(client_frame(0x88, std::string("\x03\xE8", 2) + std::string(124, 'r')), 1002,
        "close over 125");
  check(client_frame(0x89, "p", true, Len::k16), 0, "short ping, 16-bit length");
  check(client_frame(0x09, "p"), 1002, "fragmented ping");
  check(client_frame(0x0A, "p"), 1002, "fragmented pong");
  check(client_frame(0x08, ""), 1002, "fragmented close");
  check(last_fragment("x"), 1002, "final continuation without a message");
  check(middle_fragment("x"), 1002, "continuation without a message");
  check(text("a") + last_fragment("b"), 1002, "continuation after a complete message");
  check(first_fragment("a") + text("b"), 1002, "text inside a fragmented message");
  check(first_fragment("a") + first_fragment("b"), 1002, "new fragmented text inside another");
  check(first_fragment("a") + client_frame(0x82, "b"), 1002, "binary inside a fragmented text");
  std::string huge = text("");
  huge[1] = static_cast<char>(0x80 | 127);
  huge.insert(2, std::string("\x80\0\0\0\0\0\0\0", 8));
  check(huge, 1002, "64-bit length with the top bit set");
}

TEST(FrameReader, ErrorsAreFoundFromTheFirstBytesThatShowThem) {
  MessageReader r(4096);
  Recorder h;
  auto e = feed(r, std::string(1, '\xC1'), h);  // RSV1, one byte in
  ASSERT_TRUE(e);
  EXPECT_EQ(e->close_code, 1002);
  MessageReader r2(4096);
  e = feed(r2, std::string("\x81\x05", 2), h);  // unmasked, two bytes in
  ASSERT_TRUE(e);
  EXPECT_EQ(e->close_code, 1002);
}

TEST(FrameReader, BinaryIsUnsupportedData) {
  EXPECT_EQ(error_code(client_frame(0x82, "bin")), 1003);
  EXPECT_EQ(error_code(client_frame(0x02, "bin")), 1003);  // even as a first fragment
  EXPECT_EQ(error_code(client_frame(0x82, "")), 1003);
  EXPECT_EQ(error_code_bytewise(client_frame(0x82, "bin")), 1003);
}

TEST(FrameReader, TooBigSingleFrameAndReassembledMessage) {
  EXPECT_EQ(error_code(text(std::string(100, 'a')), 100), 0);
  EXPECT_EQ(error_code(text(std::string(101, 'a')), 100), 1009);
  EXPECT_EQ(error_code(text(std::string(65537, 'a')), 65536), 1009);
  EXPECT_EQ(
      error_code(first_fragment(std::string(60, 'a')) + last_fragment(std::string(40, 'a')), 100),
      0);
  EXPECT_EQ(
      error_code(first_fragment(std::string(60, 'a')) + last_fragment(std::string(41, 'a')), 100),
      1009);
  EXPECT_EQ(error_code(first_fragment(std::string(101, 'a')), 100), 1009);
  EXPECT_EQ(
      error_code(first_fragment(std::string(50, 'a')) + middle_fragment(std::string(50, 'a')) +
                     middle_fragment("") + last_fragment("a"),
                 100),
      1009);
  EXPECT_EQ(error_code_bytewise(
                first_fragment(std::string(60, 'a')) + last_fragment(std::string(41, 'a')), 100),
            1009);
  // Control frames obey the limit too.
  EXPECT_EQ(error_code(ping(std::string(11, 'p')), 10), 1009);
  EXPECT_EQ(error_code(ping(std::string(10, 'p')), 10), 0);
}

TEST(FrameReader, TooBigIsDecidedFromTheHeaderAlone) {
  // A 2^40-byte frame: only its header ever arrives.
  std::string header = text("").substr(0, 1);
  header.push_back(static_cast<char>(0x80 | 127));
  header.append(std::string("\0\0\x01\0\0\0\0\0", 8));
  MessageReader r(4096);
  Recorder h;
  auto e = feed(r, header, h);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->close_code, 1009);
  EXPECT_EQ(r.heap_bytes(), 0u);
  // A continuation that would overflow the message is refused before its payload is held.
  MessageReader r2(100);
  ASSERT_FALSE(feed(r2, first_fragment(std::string(90, 'a')), h));
  const std::string next = last_fragment(std::string(11, 'a'));
  e = feed(r2, next.substr(0, 2), h);  // length byte known, masking key not yet
  ASSERT_TRUE(e);
  EXPECT_EQ(e->close_code, 1009);
  EXPECT_EQ(r2.heap_bytes(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Reader: UTF-8

TEST(FrameReader, InvalidUtf8InOneFrame) {
  for (std::string_view bad : {
           "\xC0\xAF",          // overlong '/'
           "\xC1\xBF",          // overlong, 2 bytes
           "\xE0\x80\xAF",      // overlong, 3 bytes
           "\xF0\x80\x80\xAF",  // overlong, 4 bytes
           "\xED\xA0\x80",      // U+D800
           "\xED\xBF\xBF",      // U+DFFF
           "\xF4\x90\x80\x80",  // U+110000
           "\xF5\x80\x80\x80",  // beyond any plane
           "\x80",              // lone continuation
           "ok\xFF",            // never valid
           "\xE2\x82",          // truncated at the end of the message
           "\xE2\x28\xA1",      // lead then ASCII
       }) {
    EXPECT_EQ(error_code(text(bad)), 1007) << testing::PrintToString(std::string(bad));
    EXPECT_EQ(error_code_bytewise(text(bad)), 1007) << testing::PrintToString(std::string(bad));
  }
  for (std::string_view good : {"\xF4\x8F\xBF\xBF",  // U+10FFFF, the largest
                                "\xED\x9F\xBF",      // U+D7FF, just below the surrogates
                                "\xEE\x80\x80",      // U+E000, just above
                                "\xEF\xBF\xBF",      // U+FFFF
                                "\xF0\x90\x80\x80",  // U+10000
                                "\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80"}) {
    EXPECT_EQ(error_code(text(good)), 0) << testing::PrintToString(std::string(good));
    EXPECT_EQ(error_code_bytewise(text(good)), 0) << testing::PrintToString(std::string(good));
  }
}

TEST(FrameReader, CharactersSplitAcrossFragmentsAreFine) {
  const std::string ch = "\xF4\x8F\xBF\xBF";
  for (size_t cut = 1; cut < 4; ++cut) {
    MessageReader r(4096);
    Recorder h;
    ASSERT_FALSE(feed(r, first_fragment(ch.substr(0, cut)), h));
    ASSERT_FALSE(feed(r, last_fragment(ch.substr(cut)), h));
    EXPECT_EQ(h.events, (std::vector<std::string>{"text:" + ch}));
  }
  MessageReader r(4096);
  Recorder h;
  ASSERT_FALSE(feed(r,
                    first_fragment("\xF0") + middle_fragment("\x9F") + ping("") +
                        middle_fragment("\x98") + last_fragment("\x80"),
                    h));
  EXPECT_EQ(h.events, (std::vector<std::string>{"ping:", "text:😀"}));
}

TEST(FrameReader, InvalidUtf8FailsAtTheFragmentWhereItBecomesInvalid) {
  const std::vector<std::vector<std::string>> cases = {
      {"ok\xE2", "\x28"},          // a lead byte, then ASCII in the next fragment
      {"a", "\xE0", "\x80\x80"},   // overlong across fragments
      {"\xED", "\xA0\x80"},        // surrogate across fragments
      {"\xF4", "\x90\x80\x80"},    // above U+10FFFF across fragments
      {"fine", "\xFF"},            // an impossible byte
      {"\xC3\xA9", "ok", "\x80"},  // a stray continuation byte
  };
  for (const auto& fragments : cases) {
    MessageReader r(4096);
    Recorder h;
    for (size_t i = 0; i < fragments.size(); ++i) {
      // Never the final fragment: the failure must not wait for the end of the message.
      auto e = feed(r, i == 0 ? first_fragment(fragments[i]) : middle_fragment(fragments[i]), h);
      if (i + 1 < fragments.size()) {
        ASSERT_FALSE(e) << i;
      } else {
        ASSERT_TRUE(e) << i;
        EXPECT_EQ(e->close_code, 1007);
      }
    }
    EXPECT_TRUE(h.events.empty());
  }
  // Inside one frame split across reads: fails with the read that brings the bad byte.
  MessageReader r(4096);
  Recorder h;
  const std::string frame = text("ab\xFF" + std::string(100, 'c'));
  auto e = feed(r, frame.substr(0, 8 + 3), h);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->close_code, 1007);
}

TEST(FrameReader, Utf8TruncatedAtTheEndOfAFragmentedMessage) {
  MessageReader r(4096);
  Recorder h;
  ASSERT_FALSE(feed(r, first_fragment("a\xE2"), h));
  ASSERT_FALSE(feed(r, middle_fragment("\x82"), h));
  auto e = feed(r, last_fragment(""), h);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->close_code, 1007);
  EXPECT_TRUE(h.events.empty());
  EXPECT_EQ(error_code_bytewise(first_fragment("a") + last_fragment("\xF0\x9F\x98")), 1007);
}

// ---------------------------------------------------------------------------------------------
// Close frames

TEST(FrameReader, CloseFrameIsDeliveredAndEndsReading) {
  MessageReader r(4096);
  Recorder h;
  EXPECT_FALSE(feed(r, close_frame(1000, "bye") + text("after"), h));
  EXPECT_FALSE(feed(r, text("later"), h));
  EXPECT_EQ(h.events, (std::vector<std::string>{"close:1000:bye"}));
}

TEST(FrameReader, CloseFrameWithoutPayloadMeansNoStatus) {
  MessageReader r(4096);
  Recorder h;
  EXPECT_FALSE(feed(r, client_frame(0x88, ""), h));
  EXPECT_EQ(h.events, (std::vector<std::string>{"close:1005:"}));
}

TEST(FrameReader, CloseFrameRules) {
  EXPECT_EQ(error_code(client_frame(0x88, "\x03")), 1002);  // 1-byte payload
  for (uint16_t bad : {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535}) {
    EXPECT_EQ(error_code(close_frame(bad)), 1002) << bad;
  }
  for (uint16_t ok :
       {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999}) {
    MessageReader r(4096);
    Recorder h;
    EXPECT_FALSE(feed(r, close_frame(ok, "é"), h)) << ok;
    EXPECT_EQ(h.events, (std::vector<std::string>{"close:" + std::to_string(ok) + ":é"}));
  }
  EXPECT_EQ(error_code(close_frame(1000, "\xFF")), 1007);
  EXPECT_EQ(error_code(close_frame(1000, "\xE2\x82")), 1007);  // truncated character
  EXPECT_EQ(error_code(close_frame(1000, "\xED\xA0\x80")), 1007);
  EXPECT_EQ(error_code(close_frame(1000, std::string(123, 'r'))), 0);  // largest allowed
  EXPECT_EQ(error_code_bytewise(close_frame(1000, "\xFF")), 1007);
  EXPECT_EQ(error_code_bytewise(client_frame(0x88, "\x03")), 1002);
}

TEST(FrameReader, CloseInsideAFragmentedMessage) {
  for (bool bytewise : {false, true}) {
    MessageReader r(4096);
    Recorder h;
    const std::string bytes = first_fragment("abc") + close_frame(1001, "gone");
    if (bytewise) {
      for (char c : bytes)
        ASSERT_FALSE(feed(r, std::string(1, c), h));
    } else {
      ASSERT_FALSE(feed(r, bytes, h));
    }
    EXPECT_EQ(h.events, (std::vector<std::string>{"close:1001:gone"}));
    EXPECT_EQ(r.heap_bytes(), 0u);
    EXPECT_EQ(r.buffered_bytes(), 0u);
  }
}

TEST(CloseCodes, ValidityTable) {
  for (uint32_t code = 0; code <= 0xFFFF; ++code) {
    const bool expected = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                          (code >= 3000 && code <= 4999);
    ASSERT_EQ(is_valid_close_code(static_cast<uint16_t>(code)), expected) << code;
  }
  // The gateway's own codes must be sendable.
  for (uint16_t code : {close_code::kNormal, close_code::kGoingAway, close_code::kProtocolError,
                        close_code::kUnsupportedData, close_code::kInvalidPayload,
                        close_code::kPolicy, close_code::kTooBig, close_code::kInternalError,
                        close_code::kHeartbeatTimeout, close_code::kSlowConsumer}) {
    EXPECT_TRUE(is_valid_close_code(code)) << code;
  }
  EXPECT_FALSE(is_valid_close_code(close_code::kNoStatus));
  EXPECT_FALSE(is_valid_close_code(close_code::kAbnormal));
}

// ---------------------------------------------------------------------------------------------
// Reader: compressed messages (RFC 7692)

// A message as a client's deflater sends it: raw DEFLATE, sync-flushed, 00 00 ff ff removed.
std::string deflated(std::string_view message) {
  MessageDeflater deflater;
  std::string out;
  EXPECT_TRUE(deflater.compress_always(message, out));
  return out;
}

// A compressed message in `parts` frames: RSV1 on the first only.
std::string compressed_message(std::string_view message, size_t parts = 1) {
  const std::string payload = deflated(message);
  const size_t step = payload.size() / parts;
  std::string frames;
  for (size_t i = 0; i < parts; ++i) {
    const bool last = i + 1 == parts;
    const uint8_t first = static_cast<uint8_t>((last ? 0x80 : 0) | (i == 0 ? 0x41 : 0x00));
    frames += client_frame(first, last ? payload.substr(i * step) : payload.substr(i * step, step));
  }
  return frames;
}

// The close code a reader that accepts compressed messages answers `bytes` with (0: none), fed in
// one call and byte by byte (the two must agree).
uint16_t compressed_error(const std::string& bytes, uint32_t max = 4096) {
  MessageInflater inflater;
  MessageReader whole(max);
  whole.accept_compressed(&inflater);
  Recorder h;
  auto e = feed(whole, bytes, h);
  const uint16_t code = e ? e->close_code : 0;
  MessageReader bytewise(max);
  bytewise.accept_compressed(&inflater);
  Recorder h2;
  uint16_t code2 = 0;
  for (char c : bytes) {
    if (auto e2 = feed(bytewise, std::string(1, c), h2)) {
      code2 = e2->close_code;
      break;
    }
  }
  EXPECT_EQ(code, code2) << "byte by byte";
  EXPECT_EQ(h.events, h2.events);
  return code;
}

TEST(CompressedReader, WholeFrameDeliversTheInflatedText) {
  MessageInflater inflater;
  MessageReader r(4096);
  r.accept_compressed(&inflater);
  Recorder h;
  const std::string message =
      "{\"op\":\"subscribe\",\"channels\":[\"prices\",\"prices\",\"prices\"]}";
  ASSERT_FALSE(feed(r, compressed_message(message), h));
  EXPECT_EQ(h.events, (std::vector<std::string>{"text:" + message}));
  EXPECT_EQ(r.heap_bytes(), 0u);
  EXPECT_EQ(r.buffered_bytes(), 0u);
  // RFC 7692 7.2.3.1's frame, "Hello" compressed, masked as a client sends it.
  ASSERT_FALSE(feed(r, client_frame(0xC1, std::string("\xf2\x48\xcd\xc9\xc9\x07\x00", 7)), h));
  EXPECT_EQ(h.events.back(), "text:Hello");
}

TEST(CompressedReader, FragmentedMessageWithRsv1OnTheFirstFrameOnly) {
  const std::string message = std::string(3000, 'a') + "€" + std::string(3000, 'b');
  for (size_t parts : {2u, 3u, 7u}) {
    MessageInflater inflater;
    MessageReader r(8192);
    r.accept_compressed(&inflater);
    Recorder h;
    std::string bytes = compressed_message(message, parts);
    ASSERT_FALSE(feed(r, bytes, h)) << parts;
    EXPECT_EQ(h.events, (std::vector<std::string>{"text:" + message})) << parts;
    EXPECT_EQ(r.heap_bytes(), 0u);
    // Byte by byte, with a ping between the first two frames.
    MessageReader r2(8192);
    r2.accept_compressed(&inflater);
    Recorder h2;
    const std::string payload = deflated(message);
    bytes = client_frame(0x41, payload.substr(0, 5)) + ping("p") + client_frame(0x00, "") +
            client_frame(0x80, payload.substr(5));
    for (char c : bytes)
      ASSERT_FALSE(feed(r2, std::string(1, c), h2));
    EXPECT_EQ(h2.events, (std::vector<std::string>{"ping:p", "text:" + message}));
    EXPECT_EQ(r2.heap_bytes(), 0u);
  }
}

TEST(CompressedReader, SplitAndRandomlyCutStreamsGiveTheSameEvents) {
  const std::string big = std::string(2000, 'x') + "😀" + std::string(1000, 'y');
  const std::string bytes = compressed_message("one") + text("plain") + compressed_message(big, 3) +
                            first_fragment("frag-") + ping("p") + last_fragment("ment") +
                            compressed_message("") + compressed_message("last") +
                            close_frame(1000, "bye");
  const std::vector<std::string> events = {
      "text:one",       "text:plain", "text:" + big, "ping:p",
      "text:frag-ment", "text:",      "text:last",   "close:1000:bye"};
  MessageInflater inflater;
  std::mt19937 rng(11);
  for (int round = 0; round < 200; ++round) {
    MessageReader r(4096);
    r.accept_compressed(&inflater);
    Recorder h;
    size_t pos = 0;
    const size_t most = 1 + rng() % 300;
    while (pos < bytes.size()) {
      const size_t n = std::min<size_t>(bytes.size() - pos, rng() % (most + 1));
      ASSERT_FALSE(feed(r, bytes.substr(pos, n), h));
      pos += n;
      ASSERT_LE(r.heap_bytes(), 4096u + kMaxControlPayload);
    }
    ASSERT_EQ(h.events, events) << round;
    EXPECT_EQ(r.heap_bytes(), 0u);
  }
}

TEST(CompressedReader, Rsv1RulesAndReservedBits) {
  const std::string payload = deflated("hello");
  // Not on continuation frames (6.1), even when the message is compressed.
  EXPECT_EQ(compressed_error(client_frame(0x41, payload.substr(0, 2)) +
                             client_frame(0xC0, payload.substr(2))),
            1002);
  EXPECT_EQ(compressed_error(first_fragment("ab") + client_frame(0xC0, "cd")), 1002);
  // Not on control frames.
  EXPECT_EQ(compressed_error(client_frame(0xC9, "")), 1002);
  EXPECT_EQ(compressed_error(client_frame(0xCA, "")), 1002);
  EXPECT_EQ(compressed_error(client_frame(0xC8, std::string("\x03\xe8", 2))), 1002);
  EXPECT_EQ(compressed_error(client_frame(0x41, payload) + client_frame(0xC9, "")), 1002);
  // RSV2 and RSV3 are never allowed.
  EXPECT_EQ(compressed_error(client_frame(0xE1, payload)), 1002);
  EXPECT_EQ(compressed_error(client_frame(0xD1, payload)), 1002);
  EXPECT_EQ(compressed_error(client_frame(0xA1, "x")), 1002);
  EXPECT_EQ(compressed_error(client_frame(0x91, "x")), 1002);
  // Binary stays unsupported, compressed or not.
  EXPECT_EQ(compressed_error(client_frame(0xC2, payload)), 1003);
  // A reader that was not told to accept compression refuses RSV1 as before.
  EXPECT_EQ(error_code(client_frame(0xC1, payload)), 1002);
  EXPECT_EQ(error_code_bytewise(client_frame(0xC1, payload)), 1002);
  EXPECT_EQ(compressed_error(client_frame(0xC1, payload)), 0);
}

TEST(CompressedReader, BombIsTooBig) {
  // 1 MiB of zeros is about 1 KiB compressed: the compressed size passes, the inflated does not.
  const std::string bomb = client_frame(0xC1, deflated(std::string(1 << 20, '\0')));
  ASSERT_LT(bomb.size(), 4096u);
  EXPECT_EQ(compressed_error(bomb, 65536), 1009);
  MessageInflater inflater;
  MessageReader r(65536);
  r.accept_compressed(&inflater);
  Recorder h;
  auto e = feed(r, bomb, h);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->close_code, 1009);
  EXPECT_LE(inflater.output_capacity(), 65536u + MessageInflater::kChunk);
  EXPECT_EQ(r.heap_bytes(), 0u);
  // Exactly at the limit is fine; the compressed bytes count against the limit too.
  EXPECT_EQ(compressed_error(compressed_message(std::string(4096, 'a')), 4096), 0);
  EXPECT_EQ(compressed_error(compressed_message(std::string(4097, 'a')), 4096), 1009);
  const std::string random_text = [] {
    std::mt19937 rng(5);
    std::string s(3000, ' ');
    for (char& c : s)
      c = static_cast<char>(0x21 + rng() % 94);
    return s;
  }();
  ASSERT_GT(deflated(random_text).size(), 2000u);
  EXPECT_EQ(compressed_error(compressed_message(random_text), 3000), 0);
  EXPECT_EQ(compressed_error(compressed_message(random_text), 2000), 1009);  // from the header
  EXPECT_EQ(compressed_error(compressed_message(random_text, 4), 2000), 1009);
}

TEST(CompressedReader, InvalidDataOrUtf8AfterInflatingIs1007) {
  EXPECT_EQ(compressed_error(client_frame(0xC1, deflated("ok\xff"))), 1007);
  EXPECT_EQ(compressed_error(client_frame(0xC1, deflated("\xed\xa0\x80"))), 1007);
  EXPECT_EQ(compressed_error(compressed_message("truncated \xe2\x82", 3)), 1007);
  EXPECT_EQ(compressed_error(client_frame(0xC1, std::string("\xff\xff\xff", 3))), 1007);
  // Cut short: the message ends inside a DEFLATE block.
  EXPECT_EQ(compressed_error(client_frame(0xC1, std::string("\x00\x0a\x00\xf5\xffHe", 7))), 1007);
  // The same bytes uncompressed are fine: only the inflated text is checked, not the DEFLATE data.
  std::string payload;
  for (int i = 0; is_valid_utf8(payload) && i < 100; ++i)
    payload = deflated(std::string(500, 'q') + std::to_string(i));
  ASSERT_FALSE(is_valid_utf8(payload));
  EXPECT_EQ(compressed_error(client_frame(0xC1, payload)), 0);
}

TEST(CompressedReader, UncompressedMessagesStillWork) {
  MessageInflater inflater;
  MessageReader r(4096);
  r.accept_compressed(&inflater);
  Recorder h;
  const std::string bytes = mixed_stream();
  for (char c : bytes)
    ASSERT_FALSE(feed(r, std::string(1, c), h));
  EXPECT_EQ(h.events, mixed_events());
  EXPECT_EQ(error_code(text("ok\xff")), 1007);
  EXPECT_EQ(compressed_error(text("ok\xff")), 1007);
  EXPECT_EQ(compressed_error(first_fragment("ok\xe2") + last_fragment("(")), 1007);
}

TEST(CompressedReader, OneInflaterServesInterleavedReaders) {
  // The inflater belongs to the thread: two connections' messages interleave, each reader keeps
  // its own compressed bytes until its message ends.
  MessageInflater inflater;
  MessageReader a(4096);
  MessageReader b(4096);
  a.accept_compressed(&inflater);
  b.accept_compressed(&inflater);
  Recorder ha;
  Recorder hb;
  const std::string pa = deflated("message of a, " + std::string(100, 'a'));
  const std::string pb = deflated("message of b, " + std::string(100, 'b'));
  ASSERT_FALSE(feed(a, client_frame(0x41, pa.substr(0, 4)), ha));
  ASSERT_FALSE(feed(b, client_frame(0x41, pb.substr(0, 3)), hb));
  ASSERT_FALSE(feed(a, client_frame(0x80, pa.substr(4)).substr(0, 5), ha));
  ASSERT_FALSE(feed(b, client_frame(0x80, pb.substr(3)), hb));
  ASSERT_FALSE(feed(a, client_frame(0x80, pa.substr(4)).substr(5), ha));
  EXPECT_EQ(ha.events, (std::vector<std::string>{"text:message of a, " + std::string(100, 'a')}));
  EXPECT_EQ(hb.events, (std::vector<std::string>{"text:message of b, " + std::string(100, 'b')}));
  EXPECT_EQ(a.heap_bytes(), 0u);
  EXPECT_EQ(b.heap_bytes(), 0u);
}

TEST(CompressedReader, MovedReaderCarriesOnWithTheNewThreadsInflater) {
  MessageInflater first_thread;
  MessageInflater second_thread;
  MessageReader r(4096);
  r.accept_compressed(&first_thread);
  Recorder h;
  const std::string payload = deflated("moved mid-message");
  const std::string last = client_frame(0x80, payload.substr(6));
  ASSERT_FALSE(feed(r, client_frame(0x41, payload.substr(0, 6)) + last.substr(0, 7), h));
  MessageReader moved(std::move(r));
  moved.accept_compressed(&second_thread);
  ASSERT_FALSE(feed(moved, last.substr(7), h));
  EXPECT_EQ(h.events, (std::vector<std::string>{"text:moved mid-message"}));
  EXPECT_EQ(second_thread.output(), "moved mid-message");
}

TEST(CompressedReader, RefusingCompressionMidMessageDropsTheStream) {
  MessageInflater inflater;
  MessageReader r(4096);
  r.accept_compressed(&inflater);
  Recorder h;
  const std::string payload = deflated("abc");
  ASSERT_FALSE(feed(r, client_frame(0x41, payload.substr(0, 2)), h));
  r.accept_compressed(nullptr);
  EXPECT_EQ(r.heap_bytes(), 0u);
  EXPECT_FALSE(feed(r, client_frame(0x80, payload.substr(2)) + text("x"), h));
  EXPECT_TRUE(h.events.empty());
  // Between messages it is fine, and RSV1 is refused from then on.
  MessageReader r2(4096);
  r2.accept_compressed(&inflater);
  ASSERT_FALSE(feed(r2, client_frame(0xC1, payload), h));
  r2.accept_compressed(nullptr);
  ASSERT_FALSE(feed(r2, text("plain"), h));
  auto e = feed(r2, client_frame(0xC1, payload), h);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->close_code, 1002);
  EXPECT_EQ(h.events, (std::vector<std::string>{"text:abc", "text:plain"}));
}

TEST(CompressedReader, HandlerMayReleaseBuffersDuringItsCallback) {
  MessageInflater inflater;
  MessageReader r(4096);
  r.accept_compressed(&inflater);
  Recorder h;
  h.during_callback = [&] { r.release_buffers(); };
  const std::string bytes = compressed_message(std::string(300, 'z'), 3);
  for (char c : bytes)
    ASSERT_FALSE(feed(r, std::string(1, c), h));
  EXPECT_EQ(h.events, (std::vector<std::string>{"text:" + std::string(300, 'z')}));
  EXPECT_EQ(r.heap_bytes(), 0u);
}

}  // namespace
}  // namespace odin::ws
