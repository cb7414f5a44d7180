// Writing JSON by hand into buffers (envelopes, replies, logs, /stats): strings, integers and
// fixed-point decimals, with no allocation beyond the destination's growth. Parsing uses
// simdjson.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace odin::core::json {

// Most characters write_uint writes (UINT64_MAX has 20 digits).
inline constexpr size_t kMaxUintDigits = 20;

// Appends `utf8` as a quoted JSON string. Escapes `"`, `\` and the control characters below
// 0x20 (\n \t \r \b \f, the others as \u00XX); everything else, including DEL and multi-byte
// UTF-8, passes through unchanged. Assumes valid UTF-8 (the caller validated it).
void append_string(std::string& out, std::string_view utf8);

// Number of decimal digits of `v` (1 for 0).
size_t uint_digits(uint64_t v);
// Writes the decimal digits of `v` at `out`, which has room for kMaxUintDigits, and returns the
// end of what it wrote. No terminator.
char* write_uint(char* out, uint64_t v);
void append_uint(std::string& out, uint64_t v);
void append_int(std::string& out, int64_t v);
// Appends `v` in fixed notation with `decimals` digits after the point (clamped to 0..17; 0
// writes no point). NaN and infinities write 0 with those decimals (JSON has no such numbers).
void append_double(std::string& out, double v, int decimals);

// Reading the raw text of JSON already validated (by simdjson), to pass values on byte for byte.
// Each returns the index just past what it skips, bounded by the text's end, so even invalid
// input cannot make it run past the text.
bool is_space(char c);
size_t skip_space(std::string_view text, size_t i);
size_t skip_string(std::string_view text, size_t i);  // text[i] is the opening quote
size_t skip_value(std::string_view text, size_t i);   // text[i] is the value's first byte

}  // namespace odin::core::json
