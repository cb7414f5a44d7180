// JSON writing helpers (see json.hpp).
#include "core/json.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>

namespace odin::core::json {

namespace {

// For each byte: 0 when it passes through, else the letter after the backslash ('u' for \u00XX).
constexpr std::array<char, 256> kEscape = [] {
  std::array<char, 256> t{};
  for (int c = 0; c < 0x20; ++c)
    t[c] = 'u';
  t['\b'] = 'b';
  t['\t'] = 't';
  t['\n'] = 'n';
  t['\f'] = 'f';
  t['\r'] = 'r';
  t['"'] = '"';
  t['\\'] = '\\';
  return t;
}();

constexpr char kHex[] = "0123456789abcdef";

// "00" "01" ... "99": two digits per division halves the divisions.
constexpr std::array<char, 200> kDigitPairs = [] {
  std::array<char, 200> t{};
  for (int i = 0; i < 100; ++i) {
    t[2 * i] = static_cast<char>('0' + i / 10);
    t[2 * i + 1] = static_cast<char>('0' + i % 10);
  }
  return t;
}();

constexpr std::array<uint64_t, 20> kPowersOf10 = [] {
  std::array<uint64_t, 20> t{};
  uint64_t p = 1;
  for (auto& v : t) {
    v = p;
    p *= 10;  // wraps after 10^19, past the last entry
  }
  return t;
}();

}  // namespace

void append_string(std::string& out, std::string_view utf8) {
  out.reserve(out.size() + utf8.size() + 2);
  out.push_back('"');
  const char* run = utf8.data();
  const char* const end = utf8.data() + utf8.size();
  for (const char* p = run; p != end; ++p) {
    const char esc = kEscape[static_cast<unsigned char>(*p)];
    if (esc == 0) continue;
    out.append(run, p);
    run = p + 1;
    if (esc == 'u') {
      const auto c = static_cast<unsigned char>(*p);
      const char seq[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
      out.append(seq, sizeof(seq));
    } else {
      const char seq[2] = {'\\', esc};
      out.append(seq, sizeof(seq));
    }
  }
  out.append(run, end);
  out.push_back('"');
}

size_t uint_digits(uint64_t v) {
  // floor(log10(2) * bit_width) is the digit count of 2^(bits-1), or one less; one compare
  // against a power of ten settles it. 1233 / 4096 ~ log10(2).
  const int bits = std::bit_width(v | 1);
  const int guess = (bits * 1233) >> 12;  // 0..19
  // `v | 1` makes 0 count as one digit and changes nothing else (10^k - 1 is odd).
  return static_cast<size_t>(guess) + ((v | 1) >= kPowersOf10[static_cast<size_t>(guess)] ? 1 : 0);
}

char* write_uint(char* out, uint64_t v) {
  char* const end = out + uint_digits(v);
  char* p = end;
  while (v >= 100) {
    p -= 2;
    std::memcpy(p, &kDigitPairs[(v % 100) * 2], 2);
    v /= 100;
  }
  if (v >= 10) {
    std::memcpy(p - 2, &kDigitPairs[v * 2], 2);
  } else {
    p[-1] = static_cast<char>('0' + v);
  }
  return end;
}

void append_uint(std::string& out, uint64_t v) {
  char buf[kMaxUintDigits];
  out.append(buf, write_uint(buf, v));
}

void append_int(std::string& out, int64_t v) {
  char buf[kMaxUintDigits + 1];
  char* p = buf;
  // Negating in unsigned arithmetic is defined for INT64_MIN too.
  uint64_t magnitude = static_cast<uint64_t>(v);
  if (v < 0) {
    *p++ = '-';
    magnitude = 0 - magnitude;
  }
  out.append(buf, write_uint(p, magnitude));
}

void append_double(std::string& out, double v, int decimals) {
  if (!std::isfinite(v) || v == 0) v = 0;  // also turns -0 into 0
  decimals = decimals < 0 ? 0 : (decimals > 17 ? 17 : decimals);
  // DBL_MAX in fixed notation has 309 integer digits; plus sign, point and decimals.
  char buf[330];
  const auto result = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed, decimals);
  out.append(buf, result.ptr);
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

size_t skip_space(std::string_view t, size_t i) {
  while (i < t.size() && is_space(t[i]))
    ++i;
  return i;
}

size_t skip_string(std::string_view t, size_t i) {
  ++i;
  while (i < t.size() && t[i] != '"')
    i += t[i] == '\\' ? 2 : 1;
  return std::min(i + 1, t.size());
}

size_t skip_value(std::string_view t, size_t i) {
  if (i >= t.size()) return i;
  if (t[i] == '"') return skip_string(t, i);
  if (t[i] == '{' || t[i] == '[') {
    int depth = 0;
    while (i < t.size()) {
      const char c = t[i];
      if (c == '"') {
        i = skip_string(t, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return i;
  }
  while (i < t.size() && !is_space(t[i]) && t[i] != ',' && t[i] != '}' && t[i] != ']')
    ++i;
  return i;
}

}  // namespace odin::core::json
