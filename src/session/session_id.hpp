// Session ids: the client's only credential for `resume`, so unguessable (see SessionId).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace odin::session {

// A session id is the client's only credential for `resume`, so it must be unguessable: 128 bits,
// 120 of them from the CSPRNG; the low byte of `lo` names the owning event-loop thread so any
// thread can route a resume to it. On the wire: 32 lowercase hex digits.
struct SessionId {
  uint64_t hi = 0;
  uint64_t lo = 0;

  static constexpr size_t kTextSize = 32;
  // A fresh random id owned by `thread`. Any thread.
  static SessionId random(unsigned thread);
  // Nullopt for anything but 32 hex digits.
  static std::optional<SessionId> parse(std::string_view text);
  std::string text() const;
  unsigned thread() const { return static_cast<unsigned>(lo & 0xff); }
  bool operator==(const SessionId&) const = default;
};

struct SessionIdHash {
  size_t operator()(const SessionId& id) const { return id.hi ^ (id.lo * 0x9e3779b97f4a7c15ULL); }
};

}  // namespace odin::session
