// Session ids (see session_id.hpp): random, with the owning thread in the low byte, as 32
// lowercase hex digits. Apart from session.cpp so the request parser (and its fuzz target) can
// read ids without the session's delivery code.
#include "session/session_id.hpp"

#include <openssl/rand.h>
#include <sys/random.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "spdlog/spdlog.h"

namespace odin::session {

namespace {

// 16 bytes from the CSPRNG. OpenSSL's DRBG costs no system call per id (the kernel is only asked
// to reseed it); getrandom() is the fallback. Neither failing means the process cannot issue
// safe ids at all, which is not a state to serve clients in.
void random_bytes(unsigned char (&out)[16]) {
  if (RAND_bytes(out, sizeof out) == 1) return;
  size_t got = 0;
  while (got < sizeof out) {
    const ssize_t n = ::getrandom(out + got, sizeof out - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      spdlog::critical("no source of random session ids: {}", std::strerror(errno));
      std::abort();
    }
  }
}

}  // namespace

SessionId SessionId::random(unsigned thread) {
  unsigned char bytes[16];
  random_bytes(bytes);
  SessionId id;
  std::memcpy(&id.hi, bytes, 8);
  std::memcpy(&id.lo, bytes + 8, 8);
  id.lo = (id.lo & ~uint64_t{0xff}) | (thread & 0xff);
  return id;
}

std::string SessionId::text() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kTextSize, '0');
  for (size_t i = 0; i < 16; ++i) {
    out[i] = kHex[(hi >> (60 - 4 * i)) & 0xf];
    out[16 + i] = kHex[(lo >> (60 - 4 * i)) & 0xf];
  }
  return out;
}

std::optional<SessionId> SessionId::parse(std::string_view text) {
  if (text.size() != kTextSize) return std::nullopt;
  SessionId id;
  for (size_t i = 0; i < kTextSize; ++i) {
    const char c = text[i];
    uint64_t digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return std::nullopt;  // upper case too: the gateway only ever writes lower case
    }
    uint64_t& half = i < 16 ? id.hi : id.lo;
    half = (half << 4) | digit;
  }
  return id;
}

}  // namespace odin::session
