// RFC 6455 server-side framing: encoding server frames (FIN, unmasked) and reading one client
// connection's frames (masked) into complete text messages, enforcing section 5 with the close
// code the gateway must answer with; compressed messages (RFC 7692) when the connection
// negotiated permessage-deflate. Pure logic, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "ws/utf8.hpp"

namespace odin::ws {

class MessageInflater;  // ws/deflate.hpp
enum class InflateResult : uint8_t;

enum class Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

namespace close_code {
inline constexpr uint16_t kNormal = 1000;
inline constexpr uint16_t kGoingAway = 1001;
inline constexpr uint16_t kProtocolError = 1002;
inline constexpr uint16_t kUnsupportedData = 1003;
inline constexpr uint16_t kNoStatus = 1005;
inline constexpr uint16_t kAbnormal = 1006;
inline constexpr uint16_t kInvalidPayload = 1007;
inline constexpr uint16_t kPolicy = 1008;
inline constexpr uint16_t kTooBig = 1009;
inline constexpr uint16_t kInternalError = 1011;
inline constexpr uint16_t kHeartbeatTimeout = 4000;
inline constexpr uint16_t kTokenExpired = 4001;  // docs/protocol.md: WS_AUTH=jwt, no fresh token
inline constexpr uint16_t kSlowConsumer = 4008;
}  // namespace close_code

// May a peer send `code` in a close frame (RFC 6455 7.4.1, 7.4.2)?
bool is_valid_close_code(uint16_t code);

inline constexpr size_t kMaxFrameHeaderBytes = 10;  // server frames: no masking key
inline constexpr size_t kMaxControlPayload = 125;   // RFC 6455 5.5

constexpr size_t frame_header_size(uint64_t payload_len) {
  return payload_len < 126 ? 2 : (payload_len <= 0xFFFF ? 4 : 10);
}

// Writes a FIN, unmasked frame header for `payload_len` bytes into `out` (room for
// kMaxFrameHeaderBytes); returns the bytes written. Always the minimal length encoding (5.2).
inline size_t encode_frame_header(char* out, Opcode op, uint64_t payload_len) {
  out[0] = static_cast<char>(0x80 | static_cast<uint8_t>(op));
  if (payload_len < 126) {
    out[1] = static_cast<char>(payload_len);
    return 2;
  }
  if (payload_len <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<char>(payload_len >> 8);
    out[3] = static_cast<char>(payload_len);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i)
    out[2 + i] = static_cast<char>(payload_len >> (56 - 8 * i));
  return 10;
}

// Header + payload.
void append_frame(std::string& out, Opcode op, std::string_view payload);
// A close frame; the reason is cut on a UTF-8 boundary so the payload stays <= 125 bytes.
void append_close_frame(std::string& out, uint16_t code, std::string_view reason);

struct ReadError {
  uint16_t close_code;
  std::string_view reason;  // static text
};

class FrameHandler {
 public:
  virtual ~FrameHandler() = default;
  // Each returns false to stop reading (the connection is being closed); feed() then returns at
  // once. Views point into the caller's read buffer, into memory the reader frees right after the
  // call, or (a compressed message) into the inflater's buffer, which the thread's next inflated
  // message reuses: copy what must outlive the call.
  virtual bool on_text(std::string_view message) = 0;  // complete, valid UTF-8, maybe reassembled
  // A compressed message inflated to `bytes`, before its on_text: a handler that bounds what a
  // client makes it process counts them here (the wire bytes alone undercount a compressed
  // flood). Returns false to stop reading, as on_text.
  virtual bool on_inflated(size_t bytes) {
    (void)bytes;
    return true;
  }
  virtual bool on_ping(std::string_view payload) = 0;
  virtual bool on_pong(std::string_view payload) = 0;
  // A valid close frame; code 1005 when it had no payload. Nothing is read after it.
  virtual void on_close(uint16_t code, std::string_view reason) = 0;
};

// Reads one client connection's frames. Whole frames are handled in place (unmasked in the
// caller's buffer, no copy). Bytes are copied only for a frame whose payload is split across
// feed() calls or for a fragmented message, and that memory is freed as soon as the frame or
// message completes, so an idle reader owns no heap memory. A split header is kept inline.
//
// Limits: a data frame, or a reassembled message, larger than max_message_bytes is refused (1009)
// from its header alone, so the held message never exceeds max_message_bytes. Control frames obey
// the same limit (and 125 bytes). The only case that holds more is a control frame split across
// reads in the middle of a fragmented message: its payload (<= 125 bytes) sits after the message.
// Non-minimal length encodings are accepted: RFC 6455 5.2 asks senders for the minimal form but
// does not tell receivers to fail on it (and Autobahn does not test for it).
//
// Compressed messages (RFC 7692), only after accept_compressed(): RSV1 on the first frame of a
// message marks it compressed. Such a message is collected as it came (its compressed size obeys
// max_message_bytes like any message's), inflated when its last frame arrives into the inflater's
// buffer (at most max_message_bytes, else 1009; 1007 when it is not DEFLATE), then checked for
// UTF-8 as a whole (1007). RSV1 on a continuation or control frame, RSV1 without
// accept_compressed(), and RSV2/RSV3 always are protocol errors (1002).
//
// Once feed() returns an error, or on_close() was called, the reader ignores all further input.
// When a handler returns false with bytes of the same feed() left over, those bytes are lost and
// the reader ignores further input as well (it would be out of sync); when the stop came with the
// last frame of the feed() call, reading can go on (e.g. to see the peer's close frame).
class MessageReader {
 public:
  explicit MessageReader(uint32_t max_message_bytes) : max_message_(max_message_bytes) {}

  // Accepts compressed messages (the connection negotiated permessage-deflate with
  // client_no_context_takeover), inflating them with `inflater`; nullptr refuses them again.
  // Threading: the reader does not own the inflater and uses it only inside feed(), so it must be
  // the inflater of the thread that calls feed() and outlive that use. A reader moved to another
  // thread is handed that thread's inflater before its next feed(); a compressed message in
  // progress is held by the reader, not the inflater, so it survives the move. Clearing it in the
  // middle of a compressed message drops the stream (later input is ignored).
  void accept_compressed(MessageInflater* inflater);

  // Consumes all of `bytes` (unmasking in place). Returns nullopt when fine, including when more
  // bytes are needed; otherwise the code and reason to close the connection with.
  std::optional<ReadError> feed(std::span<char> bytes, FrameHandler& handler);
  // Bytes held for a partial frame (header included) or a fragmented message.
  size_t buffered_bytes() const { return held_.size + header_len_; }
  // Heap memory held right now (capacity, not size).
  size_t heap_bytes() const { return held_.capacity; }
  // Frees held memory (the owner calls it when closing). If that drops part of a frame or message
  // the stream cannot be followed any more, and later input is ignored.
  void release_buffers();

 private:
  // Exactly sized heap bytes: smaller than std::string (24 bytes, not 32) and without a growth
  // policy of its own, so the capacity never overshoots the limits.
  struct Held {
    std::unique_ptr<char[]> data;
    size_t size = 0;
    size_t capacity = 0;

    Held() = default;
    Held(Held&& other) noexcept
        : data(std::move(other.data)),
          size(std::exchange(other.size, 0)),
          capacity(std::exchange(other.capacity, 0)) {}
    Held& operator=(Held&& other) noexcept {
      data = std::move(other.data);
      size = std::exchange(other.size, 0);
      capacity = std::exchange(other.capacity, 0);
      return *this;
    }
    std::string_view view() const { return {data.get(), size}; }
    void reserve(size_t wanted, size_t soft_limit);
  };

  struct Header {
    uint64_t payload_len;
    uint8_t size;  // header bytes, masking key included
    uint8_t opcode;
    bool fin;
    bool compressed;  // RSV1, allowed only on the first frame of a message
    char mask[4];
  };
  enum class Parse : uint8_t { kNeedMore, kDone, kError };

  Parse parse_header(const char* data, size_t n, Header& h, std::optional<ReadError>& error) const;
  // A frame whose whole payload is at hand (already unmasked). False: stop reading.
  bool on_whole_frame(const Header& h, std::span<char> payload, FrameHandler& handler,
                      std::optional<ReadError>& error);
  void start_split_frame(const Header& h);
  // The next bytes of the split frame's payload. False on invalid UTF-8.
  bool collect(std::span<char> chunk, std::optional<ReadError>& error);
  bool finish_split_frame(FrameHandler& handler, std::optional<ReadError>& error);
  bool on_control(Opcode op, std::string_view payload, FrameHandler& handler,
                  std::optional<ReadError>& error);
  bool deliver_message(FrameHandler& handler, std::optional<ReadError>& error);
  // Hands over a compressed message the inflater has just inflated into its buffer.
  bool deliver_inflated(InflateResult inflated, FrameHandler& handler,
                        std::optional<ReadError>& error);
  ReadError fail(ReadError error);
  void stop();

  Held held_;  // the fragmented message so far, then a split frame's payload
  MessageInflater* inflater_ = nullptr;  // not owned: the feeding thread's (accept_compressed)
  uint32_t max_message_;
  uint32_t frame_left_ = 0;   // payload bytes of the split frame still to come
  uint32_t frame_start_ = 0;  // where the split frame's payload starts in held_
  char header_[14] = {};      // a header split across reads
  uint8_t header_len_ = 0;
  char mask_[4] = {};  // the split frame's masking key, rotated to line up with the next byte
  uint8_t frame_opcode_ = 0;
  bool frame_fin_ = false;
  bool in_frame_ = false;    // a split frame's payload is being collected
  bool in_message_ = false;  // a fragmented text message is in progress
  bool compressed_ = false;  // the message in progress (split or fragmented) is compressed
  bool stopped_ = false;
  Utf8Validator utf8_;  // of the uncompressed message in progress (whole frames skip it)
};

}  // namespace odin::ws
