// Fuzzes JWT verification (auth/jwt.cpp), which reads tokens from unauthenticated clients at the
// upgrade and in `auth` requests. Byte 0 picks the mode:
//  - even: the rest is the token as a client would send it (the raw compact form), checked by
//    an HS256 verifier;
//  - odd: the rest is "<header JSON>\n<payload JSON>", which the target encodes and signs with
//    the verifier's own secret, so the fuzzer reaches the header and claim parsing that a forged
//    signature would never get past.
// Invariants beyond "no crash, no leak, no UB":
//  - a token is accepted only with exactly three parts, and never with an error text;
//  - a refused token always says why;
//  - verifying the same token again gives the same answer (the reused parser leaks nothing);
//  - an accepted token's expiry and start hold at the time it was checked;
//  - `allows` answers for any channel name without crashing, and only for valid names.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/jwt.hpp"
#include "core/channel_name.hpp"

namespace {

constexpr std::string_view kSecret = "fuzzing-secret-of-at-least-32-bytes!";
constexpr int64_t kNow = 1'700'000'000;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) violated(what);
}

std::string base64url(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v =
        (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    for (int shift : {18, 12, 6, 0})
      out.push_back(kAlphabet[(v >> shift) & 63]);
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
  }
  return out;
}

std::string signed_token(std::string_view header, std::string_view payload) {
  std::string token = base64url(header) + "." + base64url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(token.data()), token.size(), mac, &mac_len);
  token += "." + base64url({reinterpret_cast<const char*>(mac), mac_len});
  return token;
}

const odin::auth::JwtVerifier& verifier() {
  static const odin::auth::JwtVerifier kVerifier = [] {
    auto made = odin::auth::JwtVerifier::from_secret(kSecret);
    if (!std::holds_alternative<odin::auth::JwtVerifier>(made)) violated("secret refused");
    return std::get<odin::auth::JwtVerifier>(std::move(made));
  }();
  return kVerifier;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string token;
  if (data[0] % 2 == 0) {
    token.assign(input);
  } else {
    const size_t cut = input.find('\n');
    if (cut == std::string_view::npos) return 0;
    token = signed_token(input.substr(0, cut), input.substr(cut + 1));
  }
  static simdjson::dom::parser parser;
  const odin::auth::TokenCheck first = verifier().verify(token, kNow, parser);
  const odin::auth::TokenCheck again = verifier().verify(token, kNow, parser);
  check(first.claims.has_value() == again.claims.has_value(), "same token, different answer");
  check(first.error == again.error, "same token, different error");
  if (!first.claims) {
    check(!first.error.empty(), "refused without a reason");
    return 0;
  }
  check(first.error.empty(), "accepted with an error");
  check(std::count(token.begin(), token.end(), '.') == 2, "accepted without three parts");
  const odin::auth::TokenClaims& claims = *first.claims;
  check(claims.expires_at == 0 || kNow < claims.expires_at, "accepted after exp");
  check(claims.not_before <= kNow, "accepted before nbf");
  check(claims.subject == again.claims->subject, "subject differs between two checks");
  for (std::string_view channel :
       {std::string_view("BTCUSD"), std::string_view("prices.BTC"), std::string_view("a.b.c"),
        std::string_view(""), std::string_view("a..b"), std::string_view("*"), input}) {
    const bool allowed = claims.channels.allows(channel);
    check(!allowed || odin::core::is_valid_channel_name(channel), "an invalid name is allowed");
    if (claims.channels.allows_everything() && odin::core::is_valid_channel_name(channel)) {
      check(allowed, "> does not allow a valid name");
    }
  }
  return 0;
}
