// UTF-8 validation for WebSocket text (RFC 6455 8.1, RFC 3629): incremental across fragments,
// rejecting overlongs, surrogates and code points above U+10FFFF.
#pragma once

#include <cstdint>
#include <string_view>

namespace odin::ws {

class Utf8Validator {
 public:
  // Feeds the next chunk; false as soon as the input can no longer be valid UTF-8.
  bool feed(std::string_view chunk);
  // True when the input so far ends on a character boundary.
  bool complete() const { return state_ == kAccept; }
  void reset() { state_ = kAccept; }

 private:
  static constexpr uint8_t kAccept = 0;
  static constexpr uint8_t kReject = 1;
  uint8_t state_ = kAccept;
};

bool is_valid_utf8(std::string_view text);

}  // namespace odin::ws
