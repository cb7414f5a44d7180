// RFC 6455 framing (see frame.hpp). Section numbers refer to RFC 6455 unless RFC 7692 is named.
#include "ws/frame.hpp"

#include <algorithm>
#include <cstring>

#include "ws/deflate.hpp"

namespace odin::ws {

namespace {

constexpr ReadError kInvalidUtf8{close_code::kInvalidPayload, "invalid UTF-8"};

inline bool is_control(uint8_t opcode) {
  return (opcode & 0x8) != 0;
}

// XORs `mask` over `payload`, a word at a time (the payload sits at any alignment).
void unmask(std::span<char> payload, const char mask[4]) {
  char mask8[8];
  std::memcpy(mask8, mask, 4);
  std::memcpy(mask8 + 4, mask, 4);
  uint64_t wide;
  std::memcpy(&wide, mask8, 8);
  char* p = payload.data();
  const size_t n = payload.size();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t chunk;
    std::memcpy(&chunk, p + i, 8);
    chunk ^= wide;
    std::memcpy(p + i, &chunk, 8);
  }
  for (; i < n; ++i)
    p[i] = static_cast<char>(p[i] ^ mask[i & 3]);
}

}  // namespace

bool is_valid_close_code(uint16_t code) {
  // 7.4.1: 1004 is reserved, 1005, 1006 and 1015 must never be sent; 1012-1014 are IANA-registered
  // since; 7.4.2: 3000-4999 belong to libraries and applications. Everything else is reserved.
  if (code >= 3000 && code <= 4999) return true;
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
}

void append_frame(std::string& out, Opcode op, std::string_view payload) {
  char header[kMaxFrameHeaderBytes];
  const size_t header_size = encode_frame_header(header, op, payload.size());
  out.reserve(out.size() + header_size + payload.size());
  out.append(header, header_size);
  out.append(payload);
}

void append_close_frame(std::string& out, uint16_t code, std::string_view reason) {
  size_t keep = std::min(reason.size(), kMaxControlPayload - 2);
  // reason[keep] is the first byte cut off: if it continues a character, cut before that
  // character's lead byte too.
  while (keep > 0 && keep < reason.size() && (static_cast<uint8_t>(reason[keep]) & 0xC0) == 0x80)
    --keep;
  char frame[kMaxFrameHeaderBytes + 2];
  size_t n = encode_frame_header(frame, Opcode::kClose, 2 + keep);
  frame[n++] = static_cast<char>(code >> 8);
  frame[n++] = static_cast<char>(code);
  out.reserve(out.size() + n + keep);
  out.append(frame, n);
  out.append(reason.substr(0, keep));
}

void MessageReader::Held::reserve(size_t wanted, size_t soft_limit) {
  if (wanted <= capacity) return;
  // Doubling keeps many small fragments linear; the cap keeps a message's memory within the limit.
  const size_t grown = std::max(wanted, std::min(capacity * 2, soft_limit));
  auto bigger = std::make_unique_for_overwrite<char[]>(grown);
  if (size > 0) std::memcpy(bigger.get(), data.get(), size);
  data = std::move(bigger);
  capacity = grown;
}

void MessageReader::stop() {
  stopped_ = true;
  held_ = Held{};
  in_frame_ = false;
  in_message_ = false;
  compressed_ = false;
  header_len_ = 0;
}

void MessageReader::accept_compressed(MessageInflater* inflater) {
  if (!inflater && compressed_) stop();  // the message in progress could never be read
  inflater_ = inflater;
}

ReadError MessageReader::fail(ReadError error) {
  stop();
  return error;
}

void MessageReader::release_buffers() {
  if (in_frame_ || in_message_) stop();  // part of the stream is gone: cannot resync
  held_ = Held{};
}

MessageReader::Parse MessageReader::parse_header(const char* data, size_t n, Header& h,
                                                 std::optional<ReadError>& error) const {
  // Checks run as soon as the bytes they need are here, so garbage fails on its first byte.
  const auto b0 = static_cast<uint8_t>(data[0]);
  const uint8_t op = b0 & 0x0F;
  h.fin = (b0 & 0x80) != 0;
  h.opcode = op;
  h.compressed = (b0 & 0x40) != 0;
  // 5.2: RSV1-3 must be 0 unless an extension defines them; permessage-deflate defines RSV1 when
  // negotiated, no extension we know RSV2 or RSV3.
  if ((b0 & 0x30) || (h.compressed && !inflater_))
    return error = ReadError{close_code::kProtocolError, "reserved bits set"}, Parse::kError;
  // RFC 7692 6.1: RSV1 marks a message, so it sits on the message's first frame only.
  if (h.compressed && (is_control(op) || op == 0x0)) {
    return error = ReadError{close_code::kProtocolError, "RSV1 on a control or continuation frame"},
           Parse::kError;
  }
  if ((op > 0x2 && op < 0x8) || op > 0xA) {
    return error = ReadError{close_code::kProtocolError, "unknown opcode"}, Parse::kError;
  }
  if (is_control(op)) {
    // 5.5: control frames are never fragmented.
    if (!h.fin) {
      return error = ReadError{close_code::kProtocolError, "fragmented control frame"},
             Parse::kError;
    }
  } else if (op == 0x0) {
    if (!in_message_) {
      return error = ReadError{close_code::kProtocolError, "continuation without a message"},
             Parse::kError;
    }
  } else if (in_message_) {
    // 5.4: the fragments of one message are not interleaved with another message's.
    return error = ReadError{close_code::kProtocolError, "new message inside a fragmented one"},
           Parse::kError;
  }
  if (n < 2) return Parse::kNeedMore;
  const auto b1 = static_cast<uint8_t>(data[1]);
  // 5.1: a server must close the connection on an unmasked client frame.
  if (!(b1 & 0x80)) {
    return error = ReadError{close_code::kProtocolError, "unmasked client frame"}, Parse::kError;
  }
  const uint8_t len7 = b1 & 0x7F;
  if (op == static_cast<uint8_t>(Opcode::kBinary)) {
    return error = ReadError{close_code::kUnsupportedData, "binary frames are not accepted"},
           Parse::kError;
  }
  size_t pos = 2;
  uint64_t len = len7;
  if (len7 == 126) {
    if (n < 4) return Parse::kNeedMore;
    len = (uint64_t{static_cast<uint8_t>(data[2])} << 8) | static_cast<uint8_t>(data[3]);
    pos = 4;
  } else if (len7 == 127) {
    if (n < 10) return Parse::kNeedMore;
    len = 0;
    for (int i = 0; i < 8; ++i)
      len = (len << 8) | static_cast<uint8_t>(data[2 + i]);
    // 5.2: the most significant bit of a 64-bit length must be 0.
    if (len >> 63) {
      return error = ReadError{close_code::kProtocolError, "invalid payload length"}, Parse::kError;
    }
    pos = 10;
  }
  // 5.5: the limit is on the length itself; a non-minimal encoding of a small one is fine.
  if (is_control(op) && len > kMaxControlPayload) {
    return error = ReadError{close_code::kProtocolError, "control frame payload over 125 bytes"},
           Parse::kError;
  }
  // Refused before a byte of payload is buffered. A continuation counts what the message holds.
  const uint64_t total = len + (op == 0x0 ? held_.size : 0);
  if (total > max_message_) {
    return error = ReadError{close_code::kTooBig, "message too big"}, Parse::kError;
  }
  if (n < pos + 4) return Parse::kNeedMore;
  std::memcpy(h.mask, data + pos, 4);
  h.size = static_cast<uint8_t>(pos + 4);
  h.payload_len = len;
  return Parse::kDone;
}

bool MessageReader::deliver_message(FrameHandler& handler, std::optional<ReadError>& error) {
  // The reader holds nothing once the message is handed over, and the handler may call
  // release_buffers() without pulling the message from under its own feet.
  Held message = std::move(held_);
  in_message_ = false;
  if (compressed_) {
    compressed_ = false;
    const InflateResult inflated = inflater_->inflate(message.view(), max_message_);
    message = Held{};  // the compressed copy is not needed while the handler runs
    return deliver_inflated(inflated, handler, error);
  }
  return handler.on_text(message.view());
}

bool MessageReader::deliver_inflated(InflateResult inflated, FrameHandler& handler,
                                     std::optional<ReadError>& error) {
  // The inflater's buffer holds the message, not the reader: the reader stays free of heap
  // memory, and the inflater's buffer is only reused by the next message this thread inflates.
  switch (inflated) {
    case InflateResult::kOk:
      break;
    case InflateResult::kTooBig:
      return error = ReadError{close_code::kTooBig, "message too big"}, false;
    case InflateResult::kBad:
      return error = ReadError{close_code::kInvalidPayload, "invalid compressed data"}, false;
  }
  const std::string_view message = inflater_->output();
  if (!handler.on_inflated(message.size())) return false;
  if (!is_valid_utf8(message)) return error = kInvalidUtf8, false;
  return handler.on_text(message);
}

bool MessageReader::on_control(Opcode op, std::string_view payload, FrameHandler& handler,
                               std::optional<ReadError>& error) {
  if (op == Opcode::kPing) return handler.on_ping(payload);
  if (op == Opcode::kPong) return handler.on_pong(payload);
  // 5.5.1: an optional 2-byte code, then an optional UTF-8 reason.
  if (payload.size() == 1) {
    error = ReadError{close_code::kProtocolError, "close frame with a 1-byte payload"};
    return false;
  }
  uint16_t code = close_code::kNoStatus;
  std::string_view reason;
  if (payload.size() >= 2) {
    code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                 static_cast<uint8_t>(payload[1]));
    if (!is_valid_close_code(code)) {
      error = ReadError{close_code::kProtocolError, "invalid close code"};
      return false;
    }
    reason = payload.substr(2);
    if (!is_valid_utf8(reason)) {
      error = ReadError{close_code::kInvalidPayload, "invalid UTF-8 in close reason"};
      return false;
    }
  }
  stop();
  handler.on_close(code, reason);
  return false;
}

bool MessageReader::on_whole_frame(const Header& h, std::span<char> payload, FrameHandler& handler,
                                   std::optional<ReadError>& error) {
  const std::string_view text(payload.data(), payload.size());
  if (is_control(h.opcode)) return on_control(static_cast<Opcode>(h.opcode), text, handler, error);
  if (h.opcode == static_cast<uint8_t>(Opcode::kText)) {
    if (h.fin) {
      // The common case: one frame, one message, straight from the read buffer.
      if (h.compressed) {
        return deliver_inflated(inflater_->inflate(text, max_message_), handler, error);
      }
      if (!is_valid_utf8(text)) return error = kInvalidUtf8, false;
      return handler.on_text(text);
    }
    compressed_ = h.compressed;
    if (!compressed_) {  // compressed bytes are no text: checked once inflated
      utf8_.reset();
      if (!utf8_.feed(text)) return error = kInvalidUtf8, false;
    }
    in_message_ = true;
  } else {  // continuation; parse_header saw to it that a message is in progress
    if (!compressed_ && (!utf8_.feed(text) || (h.fin && !utf8_.complete())))
      return error = kInvalidUtf8, false;
    if (h.fin && held_.size == 0) {  // nothing before it: no need to copy
      in_message_ = false;
      held_ = Held{};
      if (compressed_) {
        compressed_ = false;
        return deliver_inflated(inflater_->inflate(text, max_message_), handler, error);
      }
      return handler.on_text(text);
    }
  }
  held_.reserve(held_.size + payload.size(), max_message_);
  if (!payload.empty()) std::memcpy(held_.data.get() + held_.size, payload.data(), payload.size());
  held_.size += payload.size();
  return h.fin ? deliver_message(handler, error) : true;
}

void MessageReader::start_split_frame(const Header& h) {
  in_frame_ = true;
  frame_opcode_ = h.opcode;
  frame_fin_ = h.fin;
  frame_left_ = static_cast<uint32_t>(h.payload_len);
  frame_start_ = static_cast<uint32_t>(held_.size);
  std::memcpy(mask_, h.mask, 4);
  // Exact size for a single split frame; a control frame goes after the message in progress.
  held_.reserve(held_.size + h.payload_len, max_message_);
  if (h.opcode == static_cast<uint8_t>(Opcode::kText)) {
    compressed_ = h.compressed;
    utf8_.reset();
  }
}

bool MessageReader::collect(std::span<char> chunk, std::optional<ReadError>& error) {
  unmask(chunk, mask_);
  const size_t shift = chunk.size() & 3;
  if (shift != 0) {
    char rotated[4];
    for (size_t i = 0; i < 4; ++i)
      rotated[i] = mask_[(i + shift) & 3];
    std::memcpy(mask_, rotated, 4);
  }
  // Text is validated as it arrives: an invalid byte fails now, not when the frame completes.
  // Compressed text is validated once inflated.
  if (!is_control(frame_opcode_) && !compressed_ && !utf8_.feed({chunk.data(), chunk.size()})) {
    error = kInvalidUtf8;
    return false;
  }
  std::memcpy(held_.data.get() + held_.size, chunk.data(), chunk.size());
  held_.size += chunk.size();
  frame_left_ -= static_cast<uint32_t>(chunk.size());
  return true;
}

bool MessageReader::finish_split_frame(FrameHandler& handler, std::optional<ReadError>& error) {
  in_frame_ = false;
  if (!is_control(frame_opcode_)) {
    if (!frame_fin_) {
      in_message_ = true;
      return true;
    }
    if (!compressed_ && !utf8_.complete()) return error = kInvalidUtf8, false;
    return deliver_message(handler, error);
  }
  // Copied out so the message in progress goes back to exactly what it was, and the handler can
  // release the reader's buffers safely.
  char payload[kMaxControlPayload];
  const size_t n = held_.size - frame_start_;
  std::memcpy(payload, held_.data.get() + frame_start_, n);
  held_.size = frame_start_;
  if (!in_message_) held_ = Held{};
  return on_control(static_cast<Opcode>(frame_opcode_), {payload, n}, handler, error);
}

std::optional<ReadError> MessageReader::feed(std::span<char> bytes, FrameHandler& handler) {
  std::optional<ReadError> error;
  while (!stopped_) {
    bool go_on = true;
    if (in_frame_) {
      if (bytes.empty()) break;
      const size_t take = std::min<size_t>(frame_left_, bytes.size());
      if (!collect(bytes.first(take), error)) return fail(*error);
      bytes = bytes.subspan(take);
      if (frame_left_ > 0) break;  // all of `bytes` went into the frame
      go_on = finish_split_frame(handler, error);
    } else {
      if (bytes.empty()) break;
      Header h;
      Parse parsed;
      size_t used;  // bytes of `bytes` that were header
      if (header_len_ == 0) {
        parsed = parse_header(bytes.data(), bytes.size(), h, error);
        if (parsed == Parse::kNeedMore) {  // fewer than 14 bytes left
          std::memcpy(header_, bytes.data(), bytes.size());
          header_len_ = static_cast<uint8_t>(bytes.size());
          break;
        }
        used = h.size;
      } else {
        const size_t copy = std::min(sizeof(header_) - header_len_, bytes.size());
        std::memcpy(header_ + header_len_, bytes.data(), copy);
        parsed = parse_header(header_, header_len_ + copy, h, error);
        if (parsed == Parse::kNeedMore) {  // then `copy` was all of `bytes`
          header_len_ = static_cast<uint8_t>(header_len_ + copy);
          break;
        }
        used = h.size - header_len_;
        header_len_ = 0;
      }
      if (parsed == Parse::kError) return fail(*error);
      bytes = bytes.subspan(used);
      if (bytes.size() < h.payload_len) {
        start_split_frame(h);
        continue;
      }
      const std::span<char> payload = bytes.first(h.payload_len);
      bytes = bytes.subspan(h.payload_len);
      unmask(payload, h.mask);
      go_on = on_whole_frame(h, payload, handler, error);
    }
    if (error) return fail(*error);
    if (!go_on) {
      // What is left of this read is lost to us: the stream cannot be followed past it.
      if (!bytes.empty()) stop();
      break;
    }
  }
  return std::nullopt;
}

}  // namespace odin::ws
