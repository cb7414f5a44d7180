// UTF-8 validation for WebSocket text (RFC 6455 8.1, RFC 3629): an incremental validator for
// fragmented messages and a whole-string check; both reject overlongs, surrogates (U+D800-DFFF)
// and code points above U+10FFFF.
#pragma once

#include <cstdint>
#include <string_view>

namespace odin::ws {

// One byte of state, so a reader can keep it per connection for free. The state after a
// rejection is sticky: every later feed() fails until reset().
class Utf8Validator {
 public:
  // Feeds the next chunk; false as soon as the input so far can no longer be valid UTF-8, so an
  // invalid fragment fails on arrival rather than at the end of the message.
  bool feed(std::string_view chunk);
  // True when the input so far ends on a character boundary (and nothing was rejected).
  bool complete() const { return state_ == 0; }
  void reset() { state_ = 0; }

 private:
  uint8_t state_ = 0;
};

// Whole-string check (vectorised); the answer equals Utf8Validator's feed() + complete().
bool is_valid_utf8(std::string_view text);

}  // namespace odin::ws
