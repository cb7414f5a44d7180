// JWT (RFC 7519) verification for client authentication: HS256, RS256 or ES256 signatures,
// the time, issuer and audience claims, and a `channels` claim of NATS-style channel patterns
// that says which channels the connection may use. Self-contained: nothing here knows about
// connections or configuration. Never throws (beyond std::bad_alloc); failures are returned as
// short lower-case messages meant for operators' logs and for clients' close reasons.
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace simdjson::dom {
class parser;
}

namespace odin::auth {

// Longest token verify() accepts; a larger one is refused before any decoding. Ample for a
// channel list of a few dozen patterns and an RSA-4096 signature.
inline constexpr size_t kMaxTokenBytes = 8 * 1024;

// Shortest HS256 secret from_secret() accepts. RFC 7518 3.2 says a key as long as the hash
// output (256 bits) MUST be used; a shorter secret is refused rather than warned about, since
// this module has nobody to warn and a guessable secret lets anyone mint tokens.
inline constexpr size_t kMinSecretBytes = 32;

// Smallest RSA modulus from_public_key_pem() accepts (RFC 7518 3.3: 2048 bits or larger MUST).
inline constexpr int kMinRsaBits = 2048;

// Which channels a token grants, as patterns over the '.'-separated tokens of a channel name
// (NATS subject syntax): `*` matches exactly one token, `>` as the last token matches one or
// more trailing tokens, and anything else matches itself. `*` and `>` are wildcards only as
// whole tokens; inside a token they are literal, which matches nothing since channel names
// cannot contain them. Channel names may have empty tokens ("a..b" is a valid name); a wildcard
// matches an empty token like any other, so `>` matches every valid channel name.
// Default-constructed, or built from no patterns, it allows nothing.
class ChannelPermissions {
 public:
  ChannelPermissions() = default;

  // Valid patterns are 1-128 characters of the channel name alphabet (A-Z a-z 0-9 _ - . :) plus
  // `*` and `>`, with no empty token and `>` only as the last token. On the first invalid
  // pattern returns nullopt and sets `error` to e.g. `pattern 1 "a..b": empty token` (index
  // from 0; the pattern is quoted only when it is made of allowed characters).
  static std::optional<ChannelPermissions> parse(std::span<const std::string_view> patterns,
                                                 std::string& error);

  // Whether `channel` is a valid channel name matched by at least one pattern. No allocation.
  bool allows(std::string_view channel) const;
  // Whether one of the patterns is `>`.
  bool allows_everything() const { return everything_; }
  // Number of patterns (duplicates included).
  size_t size() const { return patterns_.size(); }

 private:
  std::vector<std::string> patterns_;
  bool everything_ = false;
};

struct TokenClaims {
  std::string subject;          // `sub`, empty when absent
  int64_t expires_at = 0;       // `exp` in seconds (a fraction rounded up), 0 = none
  int64_t not_before = 0;       // `nbf` in seconds (a fraction rounded up), 0 = none
  ChannelPermissions channels;  // `channels`; an absent claim allows no channel
};

// The one check of a client's channels against its token (at the upgrade, `subscribe`, `resume`
// on this or another instance, and a new token from `auth`). A null token (WS_AUTH=none) allows
// every channel.
inline bool token_allows(const TokenClaims* token, std::string_view channel) {
  return token == nullptr || token->channels.allows(channel);
}
// The first of `channels` (names, or what `name_of` maps each one to) that the token does not
// allow; null when it allows them all.
template <class Range, class NameOf = std::identity>
auto first_forbidden(const TokenClaims* token, const Range& channels, NameOf name_of = {})
    -> decltype(&*std::begin(channels)) {
  if (token == nullptr) return nullptr;
  for (const auto& channel : channels) {
    if (!token->channels.allows(name_of(channel))) return &channel;
  }
  return nullptr;
}

// Unix seconds as milliseconds, saturated at the int64 limits: a token's `exp` may be anything
// up to INT64_MAX, and multiplying that by 1000 would overflow (undefined behaviour).
constexpr int64_t seconds_to_ms(int64_t seconds) {
  int64_t ms;
  if (!__builtin_mul_overflow(seconds, int64_t{1000}, &ms)) return ms;
  return seconds > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
}

// The first Unix millisecond at which `claims` is no longer accepted (`exp` plus the leeway),
// saturated; INT64_MAX when the token has no `exp`.
constexpr int64_t expiry_ms(const TokenClaims& claims, int64_t leeway_seconds) {
  if (claims.expires_at == 0) return std::numeric_limits<int64_t>::max();
  int64_t seconds;
  if (__builtin_add_overflow(claims.expires_at, leeway_seconds, &seconds)) {
    seconds = leeway_seconds > 0 ? std::numeric_limits<int64_t>::max()
                                 : std::numeric_limits<int64_t>::min();
  }
  return seconds_to_ms(seconds);
}

// Outcome of JwtVerifier::verify: claims when the token is valid, otherwise an error.
struct TokenCheck {
  std::optional<TokenClaims> claims;
  std::string error;
};

enum class JwtAlgorithm { kHS256, kRS256, kES256 };

struct JwtOptions {
  std::string audience;        // when set, `aud` (a string or array of strings) must contain it
  std::string issuer;          // when set, `iss` must equal it
  int64_t leeway_seconds = 0;  // clock skew tolerated on `exp` and `nbf`; must be >= 0
};

namespace detail {
// Wipes the HS256 secret before freeing it.
struct SecretFree {
  size_t size = 0;
  void operator()(unsigned char* p) const;
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const;
};
}  // namespace detail

// Verifies tokens signed with one key and one algorithm, fixed when it is made: the token's
// `alg` header must name that algorithm, so a token can never pick how it is checked (no `none`,
// no HS256 token checked with an RSA public key used as the HMAC secret). Immutable once made;
// verify() may run on several threads at once, each with its own parser.
class JwtVerifier {
 public:
  using Result = std::variant<JwtVerifier, std::string>;

  // HS256 with `secret` used as raw bytes (no base64 decoding). Refuses a secret shorter than
  // kMinSecretBytes, or one that is a PEM block (a public key is no secret).
  static Result from_secret(std::string_view secret, JwtOptions options = {});
  // RS256 for an RSA key of at least kMinRsaBits, ES256 for an EC key on P-256; any other key
  // type or curve is refused. `pem` is a SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----").
  static Result from_public_key_pem(std::string_view pem, JwtOptions options = {});

  JwtVerifier(JwtVerifier&&) noexcept = default;
  JwtVerifier& operator=(JwtVerifier&&) noexcept = default;

  JwtAlgorithm algorithm() const { return algorithm_; }
  // "HS256", "RS256" or "ES256".
  std::string_view algorithm_name() const;
  const JwtOptions& options() const { return options_; }

  // Checks `token` (the compact serialisation, header.payload.signature) at `now_seconds` (Unix
  // time). The signature is checked before any claim is read. `parser` is reused for the
  // header and the payload and may be shared with other work on the same thread.
  TokenCheck verify(std::string_view token, int64_t now_seconds,
                    simdjson::dom::parser& parser) const;

 private:
  JwtVerifier(JwtAlgorithm algorithm, JwtOptions options);
  bool signature_ok(std::string_view signing_input, std::string_view signature) const;

  JwtAlgorithm algorithm_;
  JwtOptions options_;
  std::unique_ptr<unsigned char, detail::SecretFree> secret_;  // HS256
  std::unique_ptr<EVP_PKEY, detail::PkeyFree> key_;            // RS256, ES256
};

}  // namespace odin::auth
