// Channel names (PROTOCOL.md): 1 to 128 characters of A-Z a-z 0-9 _ - . :
// Checked on every subscribe, publish and ?channels= entry before a name reaches the index; the
// set excludes NATS wildcards and separators other than '.' (`*`, `>`, space, `/`).
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace odin::core {

inline constexpr size_t kMaxChannelNameLength = 128;

namespace detail {
inline constexpr std::array<bool, 256> kChannelNameChars = [] {
  std::array<bool, 256> t{};
  for (int c = 'A'; c <= 'Z'; ++c)
    t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c)
    t[c] = true;
  for (int c = '0'; c <= '9'; ++c)
    t[c] = true;
  t['_'] = t['-'] = t['.'] = t[':'] = true;
  return t;
}();
}  // namespace detail

constexpr bool is_channel_name_char(char c) {
  return detail::kChannelNameChars[static_cast<unsigned char>(c)];
}

constexpr bool is_valid_channel_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxChannelNameLength) return false;
  for (char c : name) {
    if (!is_channel_name_char(c)) return false;
  }
  return true;
}

static_assert(is_valid_channel_name("price:BTC-USD.v1_x"));
static_assert(!is_valid_channel_name("odin.token.>"));

}  // namespace odin::core
