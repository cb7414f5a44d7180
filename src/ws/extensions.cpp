// permessage-deflate negotiation (see extensions.hpp). Section numbers refer to RFC 7692 unless
// they say RFC 6455 or RFC 7230.
//
// Names are compared exactly. RFC 6455 9.1 does not make extension or parameter names
// case-insensitive (it does say so for the Upgrade value, 4.2.1), and the clients compare them
// exactly themselves (Chromium, npm ws, python-websockets): accepting "Permessage-Deflate" and
// answering "permessage-deflate" could make a client fail the connection for an extension it did
// not offer, whereas declining only costs compression.
//
// A malformed list anywhere (RFC 6455 9.1 asks the recipient to fail the connection) leaves the
// connection uncompressed instead: the upgrade goes on, and nothing is guessed from a list this
// parser does not read the way its sender meant.
#include "ws/extensions.hpp"

#include <charconv>

namespace odin::ws {

namespace {

constexpr std::string_view kPermessageDeflate = "permessage-deflate";

// RFC 7230 3.2.6 tchar.
constexpr bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A parameter's value after quoted-string unescaping. Only its first two characters are kept:
// no value the gateway accepts is longer, and the length alone declines the rest.
struct Value {
  bool present = false;
  size_t size = 0;
  char head[2] = {};

  void add(char c) {
    if (size < sizeof head) head[size] = c;
    ++size;
  }
};

// 7.1.2.1 / 7.1.2.2: a decimal integer in 8..15 without leading zeros; 0 when it is not one.
uint8_t window_bits(const Value& v) {
  if (!v.present) return 0;
  if (v.size == 1 && (v.head[0] == '8' || v.head[0] == '9')) return v.head[0] - '0';
  if (v.size == 2 && v.head[0] == '1' && v.head[1] >= '0' && v.head[1] <= '5')
    return 10 + (v.head[1] - '0');
  return 0;
}

// Reads one header line from left to right; nothing is read twice.
class Cursor {
 public:
  explicit Cursor(std::string_view line) : s_(line) {}

  bool done() const { return i_ == s_.size(); }

  // RFC 7230 OWS, allowed around every separator (RFC 6455 9.1 uses RFC 2616's implied *LWS).
  void skip_ows() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t'))
      ++i_;
  }

  bool eat(char c) {
    if (i_ == s_.size() || s_[i_] != c) return false;
    ++i_;
    return true;
  }

  std::string_view token() {
    const size_t start = i_;
    while (i_ < s_.size() && is_tchar(s_[i_]))
      ++i_;
    return s_.substr(start, i_ - start);
  }

  // token / quoted-string. RFC 6455 9.1: a quoted value must be a token once unescaped, so a
  // quoted string holding anything else (an empty one too) is malformed.
  bool value(Value& v) {
    v.present = true;
    if (!eat('"')) {
      for (const char c : token())
        v.add(c);
      return v.size > 0;
    }
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return v.size > 0;
      if (c == '\\') {
        if (i_ == s_.size()) return false;
        c = s_[i_++];
      }
      if (!is_tchar(c)) return false;
      v.add(c);
    }
    return false;  // unterminated
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

// One permessage-deflate offer, parameter by parameter. Section 5: the server declines an offer
// with a parameter not defined for offers, an invalid value, or a parameter given twice.
class DeflateOffer {
 public:
  void param(std::string_view name, const Value& value) {
    bool ok = false;
    if (name == "server_no_context_takeover") {  // 7.1.1.1: no value
      ok = first(kServerNoContext) && !value.present;
      agreement_.server_no_context_takeover = true;
    } else if (name == "client_no_context_takeover") {  // 7.1.1.2: no value
      ok = first(kClientNoContext) && !value.present;
    } else if (name == "server_max_window_bits") {  // 7.1.2.1: a value is required
      const uint8_t bits = window_bits(value);
      ok = first(kServerBits) && bits != 0;
      agreement_.server_max_window_bits = bits;
      agreement_.server_max_window_bits_offered = true;
    } else if (name == "client_max_window_bits") {  // 7.1.2.2: the value is optional
      ok = first(kClientBits) && (!value.present || window_bits(value) != 0);
    }
    if (!ok) declined_ = true;
  }

  bool acceptable() const { return !declined_; }
  const DeflateAgreement& agreement() const { return agreement_; }

 private:
  enum Seen : unsigned {
    kServerNoContext = 1,
    kClientNoContext = 2,
    kServerBits = 4,
    kClientBits = 8,
  };

  bool first(Seen bit) {
    if (seen_ & bit) return false;
    seen_ |= bit;
    return true;
  }

  unsigned seen_ = 0;
  bool declined_ = false;
  DeflateAgreement agreement_{.enabled = true};
};

}  // namespace

DeflateAgreement negotiate_deflate(std::span<const std::string_view> header_values) {
  if (header_values.size() > kMaxExtensionHeaderLines) return {};
  size_t bytes = 0;
  for (const std::string_view line : header_values) {
    if (line.size() > kMaxExtensionHeaderBytes - bytes) return {};
    bytes += line.size();
  }
  // Every line is read to its end even after an offer is chosen: a malformed list anywhere means
  // no compression (see the top of this file).
  DeflateAgreement chosen;
  size_t offers = 0;
  for (const std::string_view line : header_values) {
    Cursor in(line);
    while (true) {
      in.skip_ows();
      if (in.done()) break;
      if (in.eat(',')) continue;  // an empty list element, which RFC 7230 7 says to ignore
      const std::string_view name = in.token();
      if (name.empty() || ++offers > kMaxExtensionOffers) return {};
      const bool candidate = !chosen.enabled && name == kPermessageDeflate;
      DeflateOffer offer;
      size_t params = 0;
      in.skip_ows();
      while (in.eat(';')) {
        in.skip_ows();
        const std::string_view param = in.token();
        if (param.empty() || ++params > kMaxExtensionParams) return {};
        in.skip_ows();
        Value value;
        if (in.eat('=')) {
          in.skip_ows();
          if (!in.value(value)) return {};
          in.skip_ows();
        }
        if (candidate) offer.param(param, value);
      }
      if (!in.done() && !in.eat(',')) return {};
      if (candidate && offer.acceptable()) chosen = offer.agreement();
    }
  }
  return chosen;
}

std::string_view write_deflate_response(const DeflateAgreement& agreement,
                                        std::span<char, kDeflateResponseCapacity> out) {
  if (!agreement.enabled) return {};
  char* const begin = out.data();
  char* p = begin;
  const auto put = [&p](std::string_view s) { p += s.copy(p, s.size()); };
  put(kPermessageDeflate);
  if (agreement.server_no_context_takeover) put("; server_no_context_takeover");
  put("; client_no_context_takeover");
  if (agreement.server_max_window_bits_offered) {
    put("; server_max_window_bits=");
    // The capacity holds three digits, so any uint8_t fits.
    p = std::to_chars(p, begin + out.size(), unsigned{agreement.server_max_window_bits}).ptr;
  }
  return {begin, static_cast<size_t>(p - begin)};
}

}  // namespace odin::ws
