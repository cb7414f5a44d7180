// Writing JSON by hand into buffers: strings, integers, decimals. (Parsing uses simdjson.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace odin::json {

// Appends `utf8` as a quoted JSON string; assumes valid UTF-8 and passes it through.
void append_string(std::string& out, std::string_view utf8);

size_t uint_digits(uint64_t v);
// Writes the decimal digits of `v` at `out` (room for 20) and returns the end.
char* write_uint(char* out, uint64_t v);
void append_uint(std::string& out, uint64_t v);
void append_int(std::string& out, int64_t v);
// Finite values with `decimals` digits after the point; NaN and infinities become 0.
void append_double(std::string& out, double v, int decimals);

}  // namespace odin::json
