// Channel names (PROTOCOL.md): 1 to 128 characters of A-Z a-z 0-9 _ - . :
#pragma once

#include <string_view>

namespace odin {

inline constexpr size_t kMaxChannelNameLength = 128;

constexpr bool is_channel_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.' || c == ':';
}

constexpr bool is_valid_channel_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxChannelNameLength) return false;
  for (char c : name) {
    if (!is_channel_name_char(c)) return false;
  }
  return true;
}

}  // namespace odin
