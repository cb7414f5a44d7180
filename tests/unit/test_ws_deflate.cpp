// Unit tests of permessage-deflate (ws/deflate.hpp): the compressed frame form checked against
// zlib's own inflate (one compressed tail under many per-recipient prefixes), the "worth it"
// decision, what a client's smaller window can take, and the inflater's limits and resets.
#define ZLIB_CONST
#include "ws/deflate.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace odin::ws {
namespace {

const std::string kTrailer("\x00\x00\xff\xff", 4);

// Inflates raw DEFLATE `data` + 00 00 ff ff (RFC 7692 7.2.2) with zlib itself, independently of
// MessageInflater. `chunk` output bytes per call: small chunks make zlib take back-references
// from its window rather than from the output buffer, as a client reading a stream does.
std::optional<std::string> zlib_inflate(std::string_view data, int window_bits = 15,
                                        size_t chunk = size_t{1} << 16) {
  z_stream z{};
  if (inflateInit2(&z, -window_bits) != Z_OK) return std::nullopt;
  const std::string in = std::string(data) + kTrailer;
  z.next_in = reinterpret_cast<const Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  std::string out;
  std::vector<char> buf(chunk);
  bool ok = true;
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(buf.data());
    z.avail_out = static_cast<uInt>(chunk);
    const int rc = inflate(&z, Z_SYNC_FLUSH);
    out.append(buf.data(), chunk - z.avail_out);
    if (rc == Z_STREAM_END || rc == Z_BUF_ERROR) break;
    if (rc != Z_OK) {
      ok = false;
      break;
    }
    if (z.avail_in == 0 && z.avail_out != 0) break;
  }
  inflateEnd(&z);
  if (!ok) return std::nullopt;
  return out;
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s)
    c = static_cast<char>(rng());
  return s;
}

// Text over 16 letters: about 4 bits of entropy a byte, so it compresses, but only by so much.
std::string random_text(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s)
    c = static_cast<char>('a' + rng() % 16);
  return s;
}

// Market-data-like JSON: the same keys again and again, the numbers changing.
std::string json_like(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s = "{\"ticks\":[";
  while (s.size() < n) {
    const unsigned bid = 4325000 + rng() % 1000;
    s += "{\"symbol\":\"BTCUSD\",\"bid\":\"" + std::to_string(bid / 100) + "." +
         std::to_string(bid % 100) + "\",\"ask\":\"" + std::to_string(bid / 100 + 1) +
         ".05\",\"volume24h\":\"" + std::to_string(rng() % 100000) +
         ".771\",\"ts\":" + std::to_string(1733220000000ull + rng() % 100000) + "},";
  }
  return s.substr(0, n);
}

uint64_t decode_length(const char* h, size_t& header_size) {
  uint64_t n = static_cast<uint8_t>(h[1]) & 0x7F;
  header_size = 2;
  if (n == 126) {
    header_size = 4;
    return (uint64_t{static_cast<uint8_t>(h[2])} << 8) | static_cast<uint8_t>(h[3]);
  }
  if (n == 127) {
    header_size = 10;
    n = 0;
    for (int i = 0; i < 8; ++i)
      n = (n << 8) | static_cast<uint8_t>(h[2 + i]);
  }
  return n;
}

// One recipient's frame: its head, then the shared compressed tail.
std::string compressed_frame(std::string_view prefix, const std::string& compressed_tail) {
  char head[kMaxCompressedDataHeadBytes];
  const size_t n = encode_compressed_data_head(head, prefix, compressed_tail.size());
  EXPECT_LE(n, kMaxCompressedDataHeadBytes);
  return std::string(head, n) + compressed_tail;
}

// The payload of a server frame, after checking its header says FIN + RSV1 + text and the right
// length.
std::string frame_payload(const std::string& frame) {
  EXPECT_EQ(static_cast<uint8_t>(frame[0]), 0xC1);
  EXPECT_EQ(static_cast<uint8_t>(frame[1]) & 0x80, 0);  // servers never mask
  size_t header = 0;
  const uint64_t len = decode_length(frame.data(), header);
  EXPECT_EQ(header, frame_header_size(len));  // the minimal length encoding
  EXPECT_EQ(len, frame.size() - header);
  return frame.substr(header);
}

const std::vector<std::string> kPrefixes = {
    "",
    "{\"seq\":1,",
    "{\"seq\":42,",
    "{\"seq\":18446744073709551615,\"conflated\":4294967295,",
    std::string(kMaxCompressedPrefixBytes, 'p'),
};

// ---------------------------------------------------------------------------------------------
// Stored blocks and the per-recipient head

TEST(StoredBlock, HeaderIsOneZeroByteThenLenAndNlenLittleEndian) {
  char out[16];
  ASSERT_EQ(encode_stored_block(out, "abc"), 8u);
  EXPECT_EQ(std::string(out, 8), std::string("\x00\x03\x00\xfc\xff"
                                             "abc",
                                             8));
  ASSERT_EQ(encode_stored_block(out, ""), 5u);
  EXPECT_EQ(std::string(out, 5), std::string("\x00\x00\x00\xff\xff", 5));  // the sync marker
  std::string big(kMaxStoredBlockBytes + 5, '\0');
  ASSERT_EQ(encode_stored_block(big.data(), std::string(kMaxStoredBlockBytes, 'x')),
            kMaxStoredBlockBytes + 5);
  EXPECT_EQ(big.substr(0, 5), std::string("\x00\xff\xff\x00\x00", 5));
  // zlib reads it as the block it says it is.
  EXPECT_EQ(zlib_inflate(std::string(out, 5) + big), std::string(kMaxStoredBlockBytes, 'x'));
}

TEST(CompressedHead, FrameHeaderCountsTheStoredBlockPrefixAndTail) {
  for (size_t tail : {0u, 1u, 64u, 65u, 65000u, 65536u, 1u << 20}) {
    for (const std::string& prefix : kPrefixes) {
      char head[kMaxCompressedDataHeadBytes];
      const size_t n = encode_compressed_data_head(head, prefix, tail);
      const uint64_t payload = kStoredBlockHeaderBytes + prefix.size() + tail;
      ASSERT_EQ(n, frame_header_size(payload) + kStoredBlockHeaderBytes + prefix.size());
      EXPECT_EQ(static_cast<uint8_t>(head[0]), 0xC1) << tail;  // FIN, RSV1, text
      size_t header = 0;
      EXPECT_EQ(decode_length(head, header), payload) << tail;
      EXPECT_EQ(std::string(head + header + kStoredBlockHeaderBytes, prefix.size()), prefix);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The frame form, against zlib's inflate

TEST(DeflateFrames, OneCompressedTailUnderManyPrefixesInflatesWithZlib) {
  MessageDeflater deflater;
  for (size_t size : {1u, 2u, 100u, 500u, 4096u, 65536u, 1u << 20}) {
    for (int kind = 0; kind < 2; ++kind) {
      const std::string tail = kind == 0 ? random_bytes(size, 1 + size) : json_like(size, 2);
      std::string compressed;
      ASSERT_TRUE(deflater.compress_always(tail, compressed)) << size;
      ASSERT_FALSE(compressed.empty());
      for (const std::string& prefix : kPrefixes) {
        const std::string frame = compressed_frame(prefix, compressed);
        // Every recipient's frame ends in the very same compressed bytes.
        ASSERT_EQ(frame.substr(frame.size() - compressed.size()), compressed);
        const auto inflated = zlib_inflate(frame_payload(frame));
        ASSERT_TRUE(inflated) << size << " " << kind << " " << prefix;
        ASSERT_EQ(inflated->size(), prefix.size() + tail.size()) << size << " " << kind;
        EXPECT_TRUE(*inflated == prefix + tail) << size << " " << kind << " " << prefix;
        // And with a reading client's small output buffer.
        const auto chunked = zlib_inflate(frame_payload(frame), 15, 100);
        ASSERT_TRUE(chunked) << size;
        EXPECT_TRUE(*chunked == prefix + tail) << size << " " << kind;
      }
    }
  }
}

TEST(DeflateFrames, EachMessageIsCompressedFromScratch) {
  // What a message compresses to depends on nothing compressed before it: that is what lets the
  // bytes be shared, and a client inflate them with a fresh state.
  MessageDeflater deflater;
  const std::string a = json_like(3000, 5);
  const std::string b = json_like(3000, 6);
  std::string first, second, again;
  ASSERT_TRUE(deflater.compress(a, first));
  ASSERT_TRUE(deflater.compress(b, second));
  ASSERT_TRUE(deflater.compress(a, again));
  EXPECT_EQ(first, again);
  MessageDeflater fresh;
  std::string from_fresh;
  ASSERT_TRUE(fresh.compress(a, from_fresh));
  EXPECT_EQ(first, from_fresh);
  EXPECT_EQ(zlib_inflate(second), b);
}

TEST(DeflateFrames, CompressAndCompressAlwaysMakeTheSameBytes) {
  MessageDeflater deflater;
  for (size_t size : {200u, 500u, 4096u, 65536u}) {
    const std::string tail = json_like(size, 9);
    std::string a, b;
    ASSERT_TRUE(deflater.compress(tail, a)) << size;
    ASSERT_TRUE(deflater.compress_always(tail, b)) << size;
    EXPECT_EQ(a, b) << size;
  }
}

TEST(DeflateFrames, EveryLevelAndWindowMakesValidFrames) {
  const std::string tail = json_like(70000, 3);
  for (int level = 1; level <= 9; ++level) {
    for (int window = 9; window <= 15; ++window) {
      MessageDeflater deflater(level, window);
      EXPECT_EQ(deflater.level(), level);
      EXPECT_EQ(deflater.window_bits(), window);
      std::string compressed;
      ASSERT_TRUE(deflater.compress(tail, compressed)) << level << " " << window;
      const std::string frame = compressed_frame("{\"seq\":7,", compressed);
      // A client with the same window takes any length: distances stay below 2^window.
      EXPECT_EQ(zlib_inflate(frame_payload(frame), window, 61), "{\"seq\":7," + tail)
          << level << " " << window;
    }
  }
}

TEST(DeflateFrames, BadParametersAreRefusedAtConstruction) {
  EXPECT_THROW(MessageDeflater(0), std::invalid_argument);
  EXPECT_THROW(MessageDeflater(10), std::invalid_argument);
  EXPECT_THROW(MessageDeflater(6, 8), std::invalid_argument);  // zlib has no raw 8-bit window
  EXPECT_THROW(MessageDeflater(6, 16), std::invalid_argument);
  EXPECT_THROW(MessageDeflater(6, 15, 0), std::invalid_argument);
  EXPECT_THROW(MessageDeflater(6, 15, 10), std::invalid_argument);
}

TEST(DeflateFrames, DeflaterAndInflaterMove) {
  MessageDeflater a;
  MessageDeflater b(std::move(a));
  MessageDeflater c(1);
  c = std::move(b);
  std::string compressed;
  ASSERT_TRUE(c.compress(json_like(1000, 1), compressed));
  EXPECT_EQ(c.level(), 6);
  MessageInflater i;
  MessageInflater j(std::move(i));
  MessageInflater k;
  k = std::move(j);
  std::string out;
  EXPECT_EQ(k.inflate(compressed, 1000, out), InflateResult::kOk);
  EXPECT_EQ(out, json_like(1000, 1));
}

// ---------------------------------------------------------------------------------------------
// Worth it or not

TEST(DeflateWorthIt, TinyAndIncompressibleInputsAreNotWorthIt) {
  MessageDeflater deflater;
  std::string out = "stale";
  for (std::string_view tiny : {"", "a", "ab", "{\"a\":1}", "{\"seq\":1}"}) {
    EXPECT_FALSE(deflater.compress(tiny, out)) << tiny;
  }
  for (size_t size : {20u, 100u, 500u, 4096u, 65536u}) {
    EXPECT_FALSE(deflater.compress(random_bytes(size, 3), out)) << size;
  }
  EXPECT_TRUE(deflater.compress(std::string(100, 'a'), out));
  EXPECT_TRUE(deflater.compress(json_like(500, 4), out));
  EXPECT_TRUE(out.size() < 500);
}

TEST(DeflateWorthIt, LimitIsFivePercentAfterTheStoredBlock) {
  EXPECT_EQ(MessageDeflater::worth_it_limit(0), 0u);
  EXPECT_EQ(MessageDeflater::worth_it_limit(5), 0u);
  EXPECT_EQ(MessageDeflater::worth_it_limit(6), 1u);
  EXPECT_EQ(MessageDeflater::worth_it_limit(100), 90u);    // 100 - 5 - 5
  EXPECT_EQ(MessageDeflater::worth_it_limit(1000), 945u);  // 1000 - 50 - 5
}

TEST(DeflateWorthIt, DecisionMatchesTheFullCompressedSize) {
  // Inputs from incompressible to very compressible: compress() says yes exactly when the
  // whole compressed form fits the limit, and then gives those bytes.
  MessageDeflater deflater;
  int yes = 0;
  int no = 0;
  for (size_t size : {10u, 30u, 60u, 200u, 1000u, 5000u}) {
    for (size_t random_part = 0; random_part <= size;
         random_part += std::max<size_t>(1, size / 16)) {
      const std::string in = random_bytes(random_part, static_cast<uint32_t>(size)) +
                             std::string(size - random_part, 'x');
      std::string full, decided;
      ASSERT_TRUE(deflater.compress_always(in, full));
      const bool worth = full.size() <= MessageDeflater::worth_it_limit(in.size());
      ASSERT_EQ(deflater.compress(in, decided), worth) << size << " " << random_part;
      if (worth) {
        EXPECT_EQ(decided, full);
        ++yes;
      } else {
        ++no;
      }
    }
  }
  EXPECT_GT(yes, 10);
  EXPECT_GT(no, 10);
}

// ---------------------------------------------------------------------------------------------
// A client's smaller window (server_max_window_bits)

// `n` bytes of text whose end repeats its first 64 bytes: a back-reference of almost n.
std::string far_repeat(size_t n, uint32_t seed) {
  std::string s = random_text(n - 64, seed);
  return s + s.substr(0, 64);
}

TEST(DeflateWindow, ClientWindowTakesMessagesUpToItsSize) {
  // The gateway compresses with a 15-bit window; a message of L bytes refers back less than L,
  // so a client with an N-bit window inflates it whenever L <= 2^N.
  MessageDeflater deflater;
  ASSERT_EQ(deflater.window_bits(), 15);
  for (int n = 9; n <= 15; ++n) {
    const size_t window = size_t{1} << n;
    for (size_t len : {window / 2, window - 1, window}) {
      for (const std::string& tail : {far_repeat(len, 11), random_text(len, 12)}) {
        std::string compressed;
        ASSERT_TRUE(deflater.compress(tail, compressed)) << n << " " << len;
        EXPECT_TRUE(deflater.fits_client_window(len, n));
        const std::string prefix = "{\"seq\":123456,";
        const std::string payload = frame_payload(compressed_frame(prefix, compressed));
        for (size_t chunk : {61u, 4096u}) {
          const auto inflated = zlib_inflate(payload, n, chunk);
          ASSERT_TRUE(inflated) << "window " << n << " length " << len << " chunk " << chunk;
          EXPECT_TRUE(*inflated == prefix + tail) << n << " " << len;
        }
      }
    }
  }
}

TEST(DeflateWindow, TheCheckAboveCanFail) {
  // Twice the window with a reference from the end to the start: too far back for the client,
  // which is why the gateway must not send it (fits_client_window says no). Up to 13 bits, as a
  // 15-bit window cannot reach back 2^15 either.
  MessageDeflater deflater;
  for (int n = 9; n <= 13; ++n) {
    const size_t len = size_t{2} << n;
    std::string compressed;
    ASSERT_TRUE(deflater.compress(far_repeat(len, 13), compressed));
    EXPECT_FALSE(deflater.fits_client_window(len, n));
    EXPECT_FALSE(zlib_inflate(compressed, n, 61)) << n;
    EXPECT_TRUE(zlib_inflate(compressed, 15, 61)) << n;
  }
  EXPECT_TRUE(deflater.fits_client_window(size_t{1} << 30, 15));
  MessageDeflater small(6, 10);
  EXPECT_TRUE(small.fits_client_window(size_t{1} << 30, 10));
  EXPECT_TRUE(small.fits_client_window(size_t{1} << 30, 12));
  EXPECT_FALSE(small.fits_client_window(1025, 9));
  EXPECT_TRUE(small.fits_client_window(512, 9));
}

// ---------------------------------------------------------------------------------------------
// The inflater

TEST(Inflater, RoundTripAtManySizes) {
  MessageDeflater deflater;
  MessageInflater inflater;
  for (size_t size : {0u, 1u, 2u, 100u, 500u, 4096u, 16384u, 16385u, 65536u, 1u << 20}) {
    for (const std::string& in : {json_like(size, 21), random_bytes(size, 22)}) {
      std::string compressed, out;
      ASSERT_TRUE(deflater.compress_always(in, compressed));
      ASSERT_EQ(inflater.inflate(compressed, in.size(), out), InflateResult::kOk) << size;
      EXPECT_TRUE(out == in) << size;
      // Into its own buffer as well.
      ASSERT_EQ(inflater.inflate(compressed, in.size()), InflateResult::kOk) << size;
      EXPECT_TRUE(inflater.output() == in) << size;
      // One byte less is too big.
      if (size > 0) {
        EXPECT_EQ(inflater.inflate(compressed, in.size() - 1, out), InflateResult::kTooBig);
        EXPECT_TRUE(out.empty());
      }
    }
  }
}

TEST(Inflater, TakesPayloadsOfOtherCompressors) {
  MessageInflater inflater;
  std::string out;
  // RFC 7692 7.2.3.1's example, "Hello" compressed.
  EXPECT_EQ(inflater.inflate(std::string("\xf2\x48\xcd\xc9\xc9\x07\x00", 7), 100, out),
            InflateResult::kOk);
  EXPECT_EQ(out, "Hello");
  // 7.2.3.3: "Hello" in a stored block, no compression.
  EXPECT_EQ(inflater.inflate(std::string("\x00\x05\x00\xfa\xff"
                                         "Hello",
                                         10),
                             100, out),
            InflateResult::kOk);
  EXPECT_EQ(out, "Hello");
  // 7.2.3.4: a final block (BFINAL=1), then the header bits of an empty stored block; or nothing.
  EXPECT_EQ(inflater.inflate(std::string("\xf3\x48\xcd\xc9\xc9\x07\x00\x00", 8), 100, out),
            InflateResult::kOk);
  EXPECT_EQ(out, "Hello");
  EXPECT_EQ(inflater.inflate(std::string("\xf3\x48\xcd\xc9\xc9\x07\x00", 7), 100, out),
            InflateResult::kOk);
  EXPECT_EQ(out, "Hello");
  // What follows a final block is not read.
  EXPECT_EQ(inflater.inflate(std::string("\xf3\x48\xcd\xc9\xc9\x07\x00garbage", 14), 100, out),
            InflateResult::kOk);
  EXPECT_EQ(out, "Hello");
  // Two sync-flushed blocks in one message (7.2.3.5 without the context takeover).
  EXPECT_EQ(inflater.inflate(std::string("\xf2\x48\xcd\xc9\xc9\x07\x00\x00\x00\xff\xff"
                                         "\xf2\x48\xcd\xc9\xc9\x07\x00",
                                         18),
                             100, out),
            InflateResult::kOk);
  EXPECT_EQ(out, "HelloHello");
  // An empty message: the empty stored block's header bits, or nothing at all.
  EXPECT_EQ(inflater.inflate(std::string("\x00", 1), 100, out), InflateResult::kOk);
  EXPECT_EQ(out, "");
  EXPECT_EQ(inflater.inflate("", 100, out), InflateResult::kOk);
  EXPECT_EQ(out, "");
}

TEST(Inflater, BombStopsAtTheLimitWithoutGrowingPastIt) {
  MessageDeflater deflater;
  std::string bomb;
  ASSERT_TRUE(deflater.compress(std::string(10 << 20, '\0'), bomb));
  EXPECT_LT(bomb.size(), 20000u);  // ~1000:1
  MessageInflater inflater;
  constexpr size_t kMax = 1 << 20;
  std::string out;
  EXPECT_EQ(inflater.inflate(bomb, kMax, out), InflateResult::kTooBig);
  EXPECT_TRUE(out.empty());
  EXPECT_LE(out.capacity(), kMax + MessageInflater::kChunk);
  EXPECT_EQ(inflater.inflate(bomb, kMax), InflateResult::kTooBig);
  EXPECT_LE(inflater.output_capacity(), kMax + MessageInflater::kChunk);
  // From an output string that already holds a lot of memory: it is used, not grown.
  std::string big;
  big.reserve(4 * kMax);
  EXPECT_EQ(inflater.inflate(bomb, kMax, big), InflateResult::kTooBig);
  EXPECT_EQ(big.capacity(), 4 * kMax);
  // Small limits too.
  for (size_t max : {0u, 1u, 100u, 16383u, 16384u, 16385u, 100000u}) {
    std::string small;
    EXPECT_EQ(inflater.inflate(bomb, max, small), InflateResult::kTooBig) << max;
    EXPECT_LE(small.capacity(), max + MessageInflater::kChunk) << max;
  }
  // A message stopped halfway leaves nothing behind for the next one.
  EXPECT_EQ(inflater.inflate(std::string("\xf2\x48\xcd\xc9\xc9\x07\x00", 7), 100, out),
            InflateResult::kOk);
  EXPECT_EQ(out, "Hello");
}

TEST(Inflater, CorruptInputIsBad) {
  MessageInflater inflater;
  std::string out = "stale";
  // BTYPE 11 is reserved.
  EXPECT_EQ(inflater.inflate(std::string("\xff\xff\xff", 3), 1000, out), InflateResult::kBad);
  EXPECT_TRUE(out.empty());
  // A stored block whose NLEN is not the complement of LEN.
  EXPECT_EQ(inflater.inflate(std::string("\x00\x05\x00\x00\x00"
                                         "Hello",
                                         10),
                             1000, out),
            InflateResult::kBad);
  // A stored block cut short: the trailer is taken as its data, and the message ends inside it.
  EXPECT_EQ(inflater.inflate(std::string("\x00\x0a\x00\xf5\xff"
                                         "He",
                                         7),
                             1000, out),
            InflateResult::kBad);
  // Random bytes, many times: never a crash, never past the limit, and mostly bad.
  int bad = 0;
  for (uint32_t seed = 0; seed < 2000; ++seed) {
    const std::string junk = random_bytes(1 + seed % 300, seed);
    const InflateResult r = inflater.inflate(junk, 4096, out);
    EXPECT_LE(out.size(), 4096u);
    bad += r == InflateResult::kBad;
  }
  EXPECT_GT(bad, 1000);
  // And it still works afterwards.
  EXPECT_EQ(inflater.inflate(std::string("\xf2\x48\xcd\xc9\xc9\x07\x00", 7), 100, out),
            InflateResult::kOk);
  EXPECT_EQ(out, "Hello");
}

TEST(Inflater, EveryMessageStartsFromAFreshState) {
  // A client compressing with context takeover: its second message refers back into the first.
  // The gateway negotiates client_no_context_takeover, so such a message is not valid, and above
  // all the inflater must not have kept the first message to make sense of it.
  const std::string hello = "Hello, world! Hello, world! The same words again.";
  z_stream z{};
  ASSERT_EQ(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string messages[2];
  for (std::string& m : messages) {
    char buf[256];
    z.next_in = reinterpret_cast<const Bytef*>(hello.data());
    z.avail_in = static_cast<uInt>(hello.size());
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    ASSERT_EQ(deflate(&z, Z_SYNC_FLUSH), Z_OK);
    m.assign(buf, sizeof(buf) - z.avail_out - 4);
  }
  deflateEnd(&z);
  ASSERT_LT(messages[1].size(), messages[0].size());  // it did refer back

  MessageInflater inflater;
  std::string out;
  ASSERT_EQ(inflater.inflate(messages[0], 1000, out), InflateResult::kOk);
  EXPECT_EQ(out, hello);
  EXPECT_EQ(inflater.inflate(messages[1], 1000, out), InflateResult::kBad);
  // A message after a failed one, and the first one again: each on its own.
  ASSERT_EQ(inflater.inflate(messages[0], 1000, out), InflateResult::kOk);
  EXPECT_EQ(out, hello);
  MessageDeflater deflater;
  std::string a, b;
  ASSERT_TRUE(deflater.compress(json_like(2000, 31), a));
  ASSERT_TRUE(deflater.compress(json_like(2000, 32), b));
  ASSERT_EQ(inflater.inflate(a, 2000, out), InflateResult::kOk);
  EXPECT_EQ(out, json_like(2000, 31));
  ASSERT_EQ(inflater.inflate(b, 2000, out), InflateResult::kOk);
  EXPECT_EQ(out, json_like(2000, 32));
}

}  // namespace
}  // namespace odin::ws
