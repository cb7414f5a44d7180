// RFC 6455 server-side framing: encoding server frames (unmasked, FIN) and reading client frames
// (masked) into complete messages, enforcing every rule of section 5 with the close code the
// gateway must answer with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ws/utf8.hpp"

namespace odin::ws {

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
inline constexpr uint16_t kSlowConsumer = 4008;
}  // namespace close_code

// May a peer send `code` in a close frame (RFC 6455 7.4.1, 7.4.2)?
bool is_valid_close_code(uint16_t code);

inline constexpr size_t kMaxFrameHeaderBytes = 10;
inline constexpr size_t kMaxControlPayload = 125;  // RFC 6455 5.5

inline size_t frame_header_size(uint64_t payload_len) {
  return payload_len < 126 ? 2 : (payload_len <= 0xFFFF ? 4 : 10);
}

// Writes a FIN, unmasked frame header for `payload_len` bytes; returns the bytes written.
inline size_t encode_frame_header(char* out, Opcode op, uint64_t payload_len) {
  out[0] = static_cast<char>(0x80 | static_cast<uint8_t>(op));
  if (payload_len < 126) {
    out[1] = static_cast<char>(payload_len);
    return 2;
  }
  if (payload_len <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<char>(payload_len >> 8);
    out[3] = static_cast<char>(payload_len & 0xFF);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i)
    out[2 + i] = static_cast<char>(payload_len >> (56 - 8 * i));
  return 10;
}

void append_frame(std::string& out, Opcode op, std::string_view payload);
// A close frame; the reason is cut (on a UTF-8 boundary) so the payload stays <= 125 bytes.
void append_close_frame(std::string& out, uint16_t code, std::string_view reason);

struct ReadError {
  uint16_t close_code;
  std::string_view reason;  // static text
};

class FrameHandler {
 public:
  virtual ~FrameHandler() = default;
  // Each returns false to stop reading (the connection is going away).
  virtual bool on_text(std::string_view message) = 0;  // complete and valid UTF-8
  virtual bool on_ping(std::string_view payload) = 0;
  virtual bool on_pong(std::string_view payload) = 0;
  // A valid close frame (code 1005 when it had no payload); nothing is read after it.
  virtual void on_close(uint16_t code, std::string_view reason) = 0;
};

// Reads one client connection's frames. Whole frames are processed in place (unmasked in the
// caller's buffer); bytes are copied only for a frame split across reads or a fragmented
// message, and that memory is released as soon as the frame or message completes.
class MessageReader {
 public:
  explicit MessageReader(uint32_t max_message_bytes) : max_message_(max_message_bytes) {}

  // Consumes all of `bytes`. Returns the error to close with, or nullopt.
  std::optional<ReadError> feed(std::span<char> bytes, FrameHandler& handler);
  size_t buffered_bytes() const { return partial_.size() + message_.size(); }
  void release_buffers();

 private:
  struct Header {
    bool fin;
    Opcode opcode;
    uint64_t payload_len;
    size_t header_len;
    char mask[4];
  };
  enum class Step { kFrame, kNeedMore, kError };
  // Parses (and validates) the header at the front of `data`.
  Step parse_header(std::span<const char> data, Header& header, ReadError& error) const;
  // Handles one complete frame whose payload is `payload` (still masked). False: stop.
  bool on_frame(const Header& header, std::span<char> payload, FrameHandler& handler,
                std::optional<ReadError>& error);

  std::string partial_;  // an incomplete frame, header included
  std::string message_;  // a fragmented text message so far
  Utf8Validator utf8_;
  bool in_message_ = false;
  bool closed_ = false;
  uint32_t max_message_;
};

}  // namespace odin::ws
