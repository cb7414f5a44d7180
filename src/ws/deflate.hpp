// RFC 7692 permessage-deflate without per-connection state: a published message is compressed
// once for every recipient (each recipient's frame puts its own small prefix in front of the
// shared compressed bytes as a stored DEFLATE block), and client messages are inflated with a
// fresh state per message, by one inflater per thread (client_no_context_takeover).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ws/frame.hpp"

struct z_stream_s;  // zlib's stream; only deflate.cpp sees zlib.h

namespace odin::ws {

// 7.2.1: what a sync flush ends with; the sender drops it, the receiver appends it again.
inline constexpr char kDeflateTrailer[4] = {0x00, 0x00, static_cast<char>(0xFF),
                                            static_cast<char>(0xFF)};

// A stored (uncompressed) block header: one byte (BFINAL=0, BTYPE=00, padding), LEN, NLEN.
inline constexpr size_t kStoredBlockHeaderBytes = 5;
inline constexpr size_t kMaxStoredBlockBytes = 0xFFFF;

// Writes `bytes` as a non-final stored block at a byte boundary (the start of a message's DEFLATE
// data, or right after a sync flush): header then the bytes. Returns the bytes written
// (kStoredBlockHeaderBytes + bytes.size()). bytes.size() <= kMaxStoredBlockBytes.
size_t encode_stored_block(char* out, std::string_view bytes);

// The largest per-recipient prefix encode_compressed_data_head() takes; the data prefix
// (`{"seq":N,"conflated":K,`, core/envelope.hpp) is at most 51 bytes.
inline constexpr size_t kMaxCompressedPrefixBytes = 128;
// Room encode_compressed_data_head() needs.
inline constexpr size_t kMaxCompressedDataHeadBytes =
    kMaxFrameHeaderBytes + kStoredBlockHeaderBytes + kMaxCompressedPrefixBytes;

// The per-recipient front of a compressed data frame: a FIN + RSV1 text frame header for a payload
// of the stored block plus `compressed_tail_size` bytes, then `prefix_json` as a stored block. The
// frame is this head followed by the shared bytes MessageDeflater::compress() made of the tail;
// the client inflates prefix + tail. Returns the bytes written (<= kMaxCompressedDataHeadBytes).
size_t encode_compressed_data_head(char* out, std::string_view prefix_json,
                                   size_t compressed_tail_size);

// Compresses whole messages, each on its own: every message starts from a reset stream, so its
// compressed bytes depend on nothing sent before and can be shared by any number of frames and
// connections (no server context takeover).
//
// Window: a message of L bytes compressed with any window has back-reference distances < L, and
// with a window of W bits at most 2^W - 262 (zlib's MAX_DIST). A client that negotiated
// server_max_window_bits=N can therefore inflate it when L <= 2^N or N >= W (fits_client_window).
// The gateway compresses with W = 15 and sends the uncompressed frame to a client it does not fit.
//
// Threading: one per producing thread; not thread-safe. compress() allocates nothing beyond
// growing `out` (zlib's memory is taken once, at construction: about 256 KiB at memLevel 8).
class MessageDeflater {
 public:
  static constexpr int kDefaultLevel = 6;
  static constexpr int kDefaultWindowBits = 15;
  // 8 is zlib's default. Each message resets the stream, and a reset clears the hash table,
  // 2^(memLevel + 8) bytes (64 KiB at 8, 128 KiB at 9): for messages of a few hundred bytes that
  // clearing costs about as much as compressing, and 9 buys them nothing.
  static constexpr int kDefaultMemLevel = 8;

  // level 1..9 (0 would only ever make stored blocks); window_bits 9..15 (zlib cannot make raw
  // DEFLATE with an 8-bit window). Throws std::invalid_argument on others, std::bad_alloc when
  // zlib cannot get its memory: construction is not on the hot path.
  explicit MessageDeflater(int level = kDefaultLevel, int window_bits = kDefaultWindowBits,
                           int mem_level = kDefaultMemLevel);
  ~MessageDeflater();
  MessageDeflater(MessageDeflater&&) noexcept;
  MessageDeflater& operator=(MessageDeflater&&) noexcept;

  // Replaces `out` with the frame form of `in` (raw DEFLATE, sync-flushed, 00 00 ff ff removed)
  // and returns true when that is worth sending instead of `in`: when it saves at least 1/20 of
  // `in` after paying the stored block the prefix adds (compressed + 5 <= in - in/20). Below that
  // the saving does not pay for the client's inflate and a second copy of the message in memory.
  // Gives up as soon as the output passes that size, so an incompressible message costs one pass
  // and no output beyond it. On false `out` holds nothing useful.
  bool compress(std::string_view in, std::string& out);
  // The same without the decision: the frame form of any `in` (false only on a zlib failure).
  bool compress_always(std::string_view in, std::string& out);

  // The largest compressed size compress() accepts for `input_size` bytes (0: none, the input is
  // too small for any saving to pay).
  static size_t worth_it_limit(size_t input_size);
  // May a client whose inflater has a 2^client_window_bits window take a message of
  // `message_bytes` compressed by this deflater (see the class comment)?
  bool fits_client_window(size_t message_bytes, int client_window_bits) const;
  int window_bits() const { return window_bits_; }
  int level() const { return level_; }

 private:
  bool run(std::string_view in, std::string& out, size_t max_compressed);

  std::unique_ptr<z_stream_s> z_;  // on the heap: zlib keeps a pointer back to it
  int level_;
  int window_bits_;
};

enum class InflateResult : uint8_t {
  kOk,
  kTooBig,  // the message inflates to more than max_output bytes
  kBad,     // not a valid DEFLATE stream (or zlib could not get memory)
};

// Inflates whole client messages, each from a fresh state (the gateway negotiates
// client_no_context_takeover, so no message refers to an earlier one): one inflater serves every
// connection of its thread, and no connection holds zlib memory.
//
// Threading: one per thread; not thread-safe. A MessageReader uses the inflater it was handed
// only inside its feed(), so the inflater must belong to the thread that calls feed().
class MessageInflater {
 public:
  // Output is produced this many bytes at a time, so a decompression bomb is stopped at most one
  // chunk past the limit (in practice one byte: the buffer never grows past max_output + 1).
  static constexpr size_t kChunk = 16 * 1024;

  // Throws std::bad_alloc when zlib cannot get its memory: construction is not on the hot path.
  MessageInflater();
  ~MessageInflater();
  MessageInflater(MessageInflater&&) noexcept;
  MessageInflater& operator=(MessageInflater&&) noexcept;

  // Replaces `out` with the inflated message: `compressed` is a message's payload as sent (the
  // receiver appends 00 00 ff ff, RFC 7692 7.2.2). kTooBig as soon as the output passes
  // max_output, with `out` never grown past max_output + kChunk; kBad when the data is not
  // DEFLATE or stops inside a block (a truncated message). A final block (BFINAL=1) ends the
  // message; bytes after it are not read. `out` is empty unless kOk.
  InflateResult inflate(std::string_view compressed, size_t max_output, std::string& out);
  // Same, into this inflater's own buffer, read with output() until the next call. The buffer
  // keeps its capacity (at most max_output + 1 of the largest message) so a thread's steady state
  // allocates nothing: memory per thread, not per connection.
  InflateResult inflate(std::string_view compressed, size_t max_output);
  std::string_view output() const { return buffer_; }
  size_t output_capacity() const { return buffer_.capacity(); }

 private:
  std::unique_ptr<z_stream_s> z_;
  std::string buffer_;
};

}  // namespace odin::ws
