// RFC 6455 framing (see frame.hpp). Section numbers refer to RFC 6455.
#include "ws/frame.hpp"

namespace odin::ws {

bool is_valid_close_code(uint16_t code) {
  // 7.4.1: 1004, 1005, 1006 and 1015 must never appear on the wire; 7.4.2: 3000-4999 are for
  // libraries and applications; the rest below 3000 is reserved.
  if (code >= 3000 && code <= 4999) return true;
  switch (code) {
    case 1000:
    case 1001:
    case 1002:
    case 1003:
    case 1007:
    case 1008:
    case 1009:
    case 1010:
    case 1011:
    case 1012:
    case 1013:
    case 1014:
      return true;
    default:
      return false;
  }
}

void append_frame(std::string& out, Opcode op, std::string_view payload) {
  char header[kMaxFrameHeaderBytes];
  out.append(header, encode_frame_header(header, op, payload.size()));
  out.append(payload);
}

void append_close_frame(std::string& out, uint16_t code, std::string_view reason) {
  size_t keep = std::min(reason.size(), kMaxControlPayload - 2);
  // Never cut a UTF-8 sequence: back up over continuation bytes.
  while (keep < reason.size() && keep > 0 && (static_cast<uint8_t>(reason[keep]) & 0xC0) == 0x80) {
    --keep;
  }
  char header[kMaxFrameHeaderBytes];
  out.append(header, encode_frame_header(header, Opcode::kClose, 2 + keep));
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code & 0xFF));
  out.append(reason.substr(0, keep));
}

void MessageReader::release_buffers() {
  std::string().swap(partial_);
  std::string().swap(message_);
}

MessageReader::Step MessageReader::parse_header(std::span<const char> data, Header& h,
                                                ReadError& error) const {
  if (data.size() < 2) return Step::kNeedMore;
  const auto b0 = static_cast<uint8_t>(data[0]);
  const auto b1 = static_cast<uint8_t>(data[1]);
  h.fin = (b0 & 0x80) != 0;
  const uint8_t op = b0 & 0x0F;
  // 5.2: RSV bits must be 0 unless an extension defines them; we negotiate none.
  if (b0 & 0x70) return error = {close_code::kProtocolError, "reserved bits set"}, Step::kError;
  if ((op > 0x2 && op < 0x8) || op > 0xA) {
    return error = {close_code::kProtocolError, "unknown opcode"}, Step::kError;
  }
  h.opcode = static_cast<Opcode>(op);
  // 5.1: a server must close on an unmasked client frame.
  if (!(b1 & 0x80)) return error = {close_code::kProtocolError, "unmasked frame"}, Step::kError;
  const uint8_t len7 = b1 & 0x7F;
  const bool control = op >= 0x8;
  // 5.5: control frames carry at most 125 bytes and are never fragmented.
  if (control && (!h.fin || len7 > kMaxControlPayload)) {
    return error = {close_code::kProtocolError, "bad control frame"}, Step::kError;
  }
  size_t pos = 2;
  if (len7 == 126) {
    if (data.size() < 4) return Step::kNeedMore;
    h.payload_len = (uint64_t{static_cast<uint8_t>(data[2])} << 8) | static_cast<uint8_t>(data[3]);
    pos = 4;
  } else if (len7 == 127) {
    if (data.size() < 10) return Step::kNeedMore;
    h.payload_len = 0;
    for (int i = 0; i < 8; ++i)
      h.payload_len = (h.payload_len << 8) | static_cast<uint8_t>(data[2 + i]);
    // 5.2: the most significant bit of a 64-bit length must be 0.
    if (h.payload_len >> 63)
      return error = {close_code::kProtocolError, "bad length"}, Step::kError;
    pos = 10;
  } else {
    h.payload_len = len7;
  }
  // Non-minimal length encodings are accepted: 5.2 says "minimal" for senders only and Autobahn
  // does not require receivers to refuse them.
  if (!control) {
    if (h.opcode == Opcode::kBinary) {
      return error = {close_code::kUnsupportedData, "binary frames are not accepted"}, Step::kError;
    }
    if (h.opcode == Opcode::kContinuation && !in_message_) {
      return error = {close_code::kProtocolError, "continuation without a message"}, Step::kError;
    }
    if (h.opcode == Opcode::kText && in_message_) {
      return error = {close_code::kProtocolError, "new message inside a fragmented one"},
             Step::kError;
    }
    const uint64_t total = h.payload_len + (in_message_ ? message_.size() : 0);
    if (total > max_message_) return error = {close_code::kTooBig, "message too big"}, Step::kError;
  }
  if (data.size() < pos + 4) return Step::kNeedMore;
  std::memcpy(h.mask, data.data() + pos, 4);
  h.header_len = pos + 4;
  if (data.size() - h.header_len < h.payload_len) return Step::kNeedMore;
  return Step::kFrame;
}

namespace {
void unmask(std::span<char> payload, const char mask[4]) {
  uint64_t wide;
  char m8[8];
  for (int i = 0; i < 8; ++i)
    m8[i] = mask[i & 3];
  std::memcpy(&wide, m8, 8);
  size_t i = 0;
  for (; i + 8 <= payload.size(); i += 8) {
    uint64_t chunk;
    std::memcpy(&chunk, payload.data() + i, 8);
    chunk ^= wide;
    std::memcpy(payload.data() + i, &chunk, 8);
  }
  for (; i < payload.size(); ++i)
    payload[i] = static_cast<char>(payload[i] ^ mask[i & 3]);
}
}  // namespace

bool MessageReader::on_frame(const Header& h, std::span<char> payload, FrameHandler& handler,
                             std::optional<ReadError>& error) {
  unmask(payload, h.mask);
  const std::string_view text(payload.data(), payload.size());
  switch (h.opcode) {
    case Opcode::kText:
      if (h.fin) {
        if (!is_valid_utf8(text))
          return error = ReadError{close_code::kInvalidPayload, "invalid UTF-8"}, false;
        return handler.on_text(text);
      }
      utf8_.reset();
      if (!utf8_.feed(text))
        return error = ReadError{close_code::kInvalidPayload, "invalid UTF-8"}, false;
      in_message_ = true;
      message_.assign(text);
      return true;
    case Opcode::kContinuation: {
      // 8.1 / Autobahn 6.x: fail fast on the fragment where the text becomes invalid.
      if (!utf8_.feed(text) || (h.fin && !utf8_.complete())) {
        return error = ReadError{close_code::kInvalidPayload, "invalid UTF-8"}, false;
      }
      message_.append(text);
      if (!h.fin) return true;
      in_message_ = false;
      std::string complete;
      complete.swap(message_);  // the reader holds nothing once the message is handed over
      return handler.on_text(complete);
    }
    case Opcode::kPing:
      return handler.on_ping(text);
    case Opcode::kPong:
      return handler.on_pong(text);
    case Opcode::kClose: {
      // 5.5.1: an optional 2-byte code, then an optional UTF-8 reason.
      if (payload.size() == 1)
        return error = ReadError{close_code::kProtocolError, "bad close frame"}, false;
      uint16_t code = close_code::kNoStatus;
      std::string_view reason;
      if (payload.size() >= 2) {
        code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                     static_cast<uint8_t>(payload[1]));
        if (!is_valid_close_code(code))
          return error = ReadError{close_code::kProtocolError, "invalid close code"}, false;
        reason = text.substr(2);
        if (!is_valid_utf8(reason))
          return error = ReadError{close_code::kInvalidPayload, "invalid UTF-8 in close reason"},
                 false;
      }
      closed_ = true;
      handler.on_close(code, reason);
      return false;
    }
    case Opcode::kBinary:
      break;
  }
  return error = ReadError{close_code::kUnsupportedData, "binary frames are not accepted"}, false;
}

std::optional<ReadError> MessageReader::feed(std::span<char> bytes, FrameHandler& handler) {
  if (closed_) return std::nullopt;
  std::optional<ReadError> error;
  ReadError header_error{};
  Header h{};

  // A frame split across reads: complete it in partial_ first, copying only what it needs.
  while (!partial_.empty()) {
    Step step = parse_header(partial_, h, header_error);
    if (step == Step::kError) return header_error;
    if (step == Step::kFrame) {
      std::string frame;
      frame.swap(partial_);  // released once handled
      const bool go_on =
          on_frame(h, std::span<char>(frame.data() + h.header_len, h.payload_len), handler, error);
      if (error) return error;
      if (!go_on) return std::nullopt;
      break;
    }
    if (bytes.empty()) return std::nullopt;
    // How much more is needed: the header's rest (at most 14 bytes), then the payload.
    size_t want = 14;
    if (partial_.size() >= 2) {
      const uint8_t len7 = static_cast<uint8_t>(partial_[1]) & 0x7F;
      const size_t header_len = (len7 < 126 ? 2 : (len7 == 126 ? 4 : 10)) + 4;
      if (partial_.size() >= header_len)
        want = header_len + h.payload_len;
      else
        want = header_len;
    }
    const size_t take = std::min(bytes.size(), want - partial_.size());
    partial_.append(bytes.data(), take);
    bytes = bytes.subspan(take);
  }

  // Whole frames straight from the read buffer.
  while (!bytes.empty()) {
    Step step = parse_header(bytes, h, header_error);
    if (step == Step::kError) return header_error;
    if (step == Step::kNeedMore) {
      partial_.assign(bytes.data(), bytes.size());
      return std::nullopt;
    }
    std::span<char> payload = bytes.subspan(h.header_len, h.payload_len);
    bytes = bytes.subspan(h.header_len + h.payload_len);
    const bool go_on = on_frame(h, payload, handler, error);
    if (error) return error;
    if (!go_on) return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace odin::ws
