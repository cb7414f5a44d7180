// UTF-8 validation (see utf8.hpp). A small state machine over RFC 3629's table of well-formed
// byte sequences; whole strings go through simdjson's vectorised validator.
#include "ws/utf8.hpp"

#include <simdjson.h>

namespace odin::ws {

namespace {
// States: 0 accept, 1 reject, then "n continuation bytes left", with the narrowed ranges of the
// first continuation byte after E0, ED, F0 and F4.
enum : uint8_t {
  kAccept = 0,
  kReject = 1,
  kTail1 = 2,  // one 80..BF left
  kTail2 = 3,  // two 80..BF left
  kTail3 = 4,  // three 80..BF left
  kE0 = 5,     // next A0..BF, then one
  kED = 6,     // next 80..9F, then one
  kF0 = 7,     // next 90..BF, then two
  kF4 = 8,     // next 80..8F, then two
};

uint8_t step(uint8_t state, uint8_t b) {
  switch (state) {
    case kAccept:
      if (b < 0x80) return kAccept;
      if (b >= 0xC2 && b <= 0xDF) return kTail1;
      if (b == 0xE0) return kE0;
      if (b == 0xED) return kED;
      if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return kTail2;
      if (b == 0xF0) return kF0;
      if (b >= 0xF1 && b <= 0xF3) return kTail3;
      if (b == 0xF4) return kF4;
      return kReject;
    case kTail1:
      return (b >= 0x80 && b <= 0xBF) ? kAccept : kReject;
    case kTail2:
      return (b >= 0x80 && b <= 0xBF) ? kTail1 : kReject;
    case kTail3:
      return (b >= 0x80 && b <= 0xBF) ? kTail2 : kReject;
    case kE0:
      return (b >= 0xA0 && b <= 0xBF) ? kTail1 : kReject;
    case kED:
      return (b >= 0x80 && b <= 0x9F) ? kTail1 : kReject;
    case kF0:
      return (b >= 0x90 && b <= 0xBF) ? kTail2 : kReject;
    case kF4:
      return (b >= 0x80 && b <= 0x8F) ? kTail2 : kReject;
    default:
      return kReject;
  }
}
}  // namespace

bool Utf8Validator::feed(std::string_view chunk) {
  uint8_t state = state_;
  size_t i = 0;
  // ASCII runs in accept state are the common case.
  while (i < chunk.size()) {
    const auto b = static_cast<uint8_t>(chunk[i]);
    if (state == kAccept && b < 0x80) {
      ++i;
      continue;
    }
    state = step(state, b);
    if (state == kReject) break;
    ++i;
  }
  state_ = state;
  return state_ != kReject;
}

bool is_valid_utf8(std::string_view text) {
  return simdjson::validate_utf8(text.data(), text.size());
}

}  // namespace odin::ws
