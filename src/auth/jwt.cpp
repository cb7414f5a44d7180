// JWT verification and channel patterns (see jwt.hpp). Section numbers refer to RFC 7515 (JWS),
// RFC 7518 (JWA) and RFC 7519 (JWT). Every OpenSSL failure is handled where it happens and its
// error queue cleared, so nothing is left behind for the next user of OpenSSL on the thread.
#include "auth/jwt.hpp"

#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <simdjson.h>

#include <array>
#include <climits>
#include <cmath>
#include <limits>

#include "core/channel_name.hpp"

namespace odin::auth {

namespace {

template <auto Free>
struct OpensslFree {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using BioPtr = std::unique_ptr<BIO, OpensslFree<BIO_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpensslFree<EVP_MD_CTX_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpensslFree<BN_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, OpensslFree<ECDSA_SIG_free>>;

// ---- channel patterns ----------------------------------------------------------------------

// Splits a pattern or channel name into its '.'-separated tokens, empty ones included.
class Tokens {
 public:
  explicit Tokens(std::string_view s) : rest_(s) {}
  bool next(std::string_view& token) {
    if (done_) return false;
    const size_t dot = rest_.find('.');
    if (dot == std::string_view::npos) {
      token = rest_;
      done_ = true;
    } else {
      token = rest_.substr(0, dot);
      rest_.remove_prefix(dot + 1);
    }
    return true;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

bool pattern_matches(std::string_view pattern, std::string_view channel) {
  Tokens p(pattern), c(channel);
  std::string_view pt, ct;
  while (p.next(pt)) {
    if (!c.next(ct)) return false;
    if (pt == ">") return true;  // `>` is last (checked by parse) and has its one token in `ct`
    if (pt != "*" && pt != ct) return false;
  }
  return !c.next(ct);
}

struct PatternProblem {
  const char* reason;
  bool quote;  // whether the pattern is safe to repeat in the message (allowed characters only)
};

std::optional<PatternProblem> pattern_problem(std::string_view pattern) {
  if (pattern.empty()) return PatternProblem{"empty", false};
  if (pattern.size() > core::kMaxChannelNameLength) {
    return PatternProblem{"longer than 128 characters", false};
  }
  for (char c : pattern) {
    if (!core::is_channel_name_char(c) && c != '*' && c != '>') {
      return PatternProblem{"character not allowed (A-Z a-z 0-9 _ - . : * >)", false};
    }
  }
  Tokens tokens(pattern);
  std::string_view token;
  bool after_tail = false;
  while (tokens.next(token)) {
    if (after_tail) return PatternProblem{"'>' must be the last token", true};
    if (token.empty()) return PatternProblem{"empty token", true};
    after_tail = token == ">";
  }
  return std::nullopt;
}

// ---- encoding --------------------------------------------------------------------------------

constexpr std::array<int8_t, 256> kBase64UrlValues = [] {
  std::array<int8_t, 256> t{};
  t.fill(-1);
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (int8_t i = 0; i < 64; ++i)
    t[static_cast<unsigned char>(alphabet[i])] = i;
  return t;
}();

// Base64url without padding (RFC 7515 2), strictly: no '=', no other alphabet, no length that
// leaves a lone character and no set bits after the last byte, so that a byte string has one
// encoding only. Leaves room for simdjson's padding so the JSON parts are parsed in place.
bool base64url_decode(std::string_view in, std::string& out) {
  out.clear();
  if (in.size() % 4 == 1) return false;
  out.reserve(in.size() / 4 * 3 + 2 + simdjson::SIMDJSON_PADDING);
  uint32_t bits = 0;
  int bit_count = 0;
  for (char c : in) {
    const int8_t value = kBase64UrlValues[static_cast<unsigned char>(c)];
    if (value < 0) return false;
    bits = (bits << 6) | static_cast<uint32_t>(value);
    bit_count += 6;
    if (bit_count >= 8) {
      bit_count -= 8;
      out.push_back(static_cast<char>(bits >> bit_count));
      bits &= (1u << bit_count) - 1;
    }
  }
  return bits == 0;
}

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// ---- signatures ------------------------------------------------------------------------------

bool digest_verify(EVP_PKEY* key, const unsigned char* signature, size_t signature_size,
                   std::string_view signing_input) {
  const MdCtxPtr ctx(EVP_MD_CTX_new());
  const bool ok = ctx &&
                  EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
                  EVP_DigestVerify(ctx.get(), signature, signature_size, bytes(signing_input),
                                   signing_input.size()) == 1;
  if (!ok) ERR_clear_error();
  return ok;
}

// ES256 signatures are R || S, 32 bytes each (RFC 7518 3.4); OpenSSL verifies DER.
bool es256_verify(EVP_PKEY* key, std::string_view signature, std::string_view signing_input) {
  constexpr size_t kHalf = 32;
  if (signature.size() != 2 * kHalf) return false;
  BignumPtr r(BN_bin2bn(bytes(signature), kHalf, nullptr));
  BignumPtr s(BN_bin2bn(bytes(signature) + kHalf, kHalf, nullptr));
  const EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    ERR_clear_error();
    return false;
  }
  static_cast<void>(r.release());  // owned by `sig` now
  static_cast<void>(s.release());
  // DER of two 33-byte integers (a leading zero when the top bit is set) is at most 72 bytes.
  std::array<unsigned char, 80> der;
  unsigned char* end = der.data();
  if (i2d_ECDSA_SIG(sig.get(), nullptr) > static_cast<int>(der.size())) return false;
  const int der_size = i2d_ECDSA_SIG(sig.get(), &end);
  if (der_size <= 0) {
    ERR_clear_error();
    return false;
  }
  return digest_verify(key, der.data(), static_cast<size_t>(der_size), signing_input);
}

// ---- header and claims -----------------------------------------------------------------------

TokenCheck failure(std::string error) {
  return TokenCheck{std::nullopt, std::move(error)};
}

// The JOSE header (RFC 7515 4.1): `alg` must be ours; `typ`, if given, "JWT" (RFC 7519 5.1);
// `crit` names extensions we do not implement, so it is refused (RFC 7515 4.1.11). Other
// parameters (`kid`, and `jwk`/`jku`/`x5u`, which would let the token choose its key) are ignored.
std::optional<std::string> check_header(const std::string& json, simdjson::dom::parser& parser,
                                        std::string_view expected_alg) {
  simdjson::dom::object header;
  if (parser.parse(json).get(header)) return "malformed header";
  std::optional<std::string_view> alg, typ;
  for (const auto field : header) {
    std::optional<std::string_view>* slot = nullptr;
    if (field.key == "alg") {
      slot = &alg;
    } else if (field.key == "typ") {
      slot = &typ;
    } else if (field.key == "crit") {
      return "unsupported crit header";
    } else {
      continue;
    }
    // Duplicates are refused (RFC 7515 4): another parser might read the other one.
    std::string_view value;
    if (*slot || field.value.get(value)) return "malformed header";
    *slot = value;
  }
  if (!alg) return "malformed header";
  if (*alg != expected_alg) return "unsupported alg";
  if (typ && !iequals_ascii(*typ, "JWT")) return "unsupported typ";
  return std::nullopt;
}

// A NumericDate (RFC 7519 2) as whole seconds. A fraction is rounded up, which keeps the checks
// exact: for whole `now`, now >= exp <=> now >= ceil(exp), and now < nbf <=> now < ceil(nbf).
// Values beyond int64 saturate.
std::optional<int64_t> numeric_date(simdjson::dom::element value) {
  constexpr double kTwoTo63 = 9223372036854775808.0;
  int64_t whole;
  if (!value.get(whole)) return whole;
  uint64_t big;
  if (!value.get(big)) return std::numeric_limits<int64_t>::max();  // above INT64_MAX
  double real;
  if (value.get(real)) return std::nullopt;
  real = std::ceil(real);
  if (real >= kTwoTo63) return std::numeric_limits<int64_t>::max();
  if (real < -kTwoTo63) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(real);
}

int64_t saturating_add(int64_t a, int64_t b) {
  int64_t sum;
  if (!__builtin_add_overflow(a, b, &sum)) return sum;
  return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
}

// Only called once the signature is good: everything here comes from the key holder.
TokenCheck read_claims(const std::string& json, int64_t now, const JwtOptions& options,
                       simdjson::dom::parser& parser) {
  simdjson::dom::object payload;
  if (parser.parse(json).get(payload)) return failure("malformed payload");
  std::optional<simdjson::dom::element> exp, nbf, sub, iss, aud, channels;
  for (const auto field : payload) {
    std::optional<simdjson::dom::element>* slot = nullptr;
    if (field.key == "exp") {
      slot = &exp;
    } else if (field.key == "nbf") {
      slot = &nbf;
    } else if (field.key == "sub") {
      slot = &sub;
    } else if (field.key == "iss") {
      slot = &iss;
    } else if (field.key == "aud") {
      slot = &aud;
    } else if (field.key == "channels") {
      slot = &channels;
    } else {
      continue;
    }
    // RFC 7519 4 allows only rejecting duplicates or taking the last; simdjson finds the first.
    if (*slot) return failure(fmt::format("duplicate {} claim", field.key));
    *slot = field.value;
  }

  TokenClaims claims;
  if (exp) {
    const std::optional<int64_t> t = numeric_date(*exp);
    if (!t) return failure("invalid exp claim");
    if (now >= saturating_add(*t, options.leeway_seconds)) return failure("token expired");
    claims.expires_at = *t;
  }
  if (nbf) {
    const std::optional<int64_t> t = numeric_date(*nbf);
    if (!t) return failure("invalid nbf claim");
    if (now < saturating_add(*t, -options.leeway_seconds)) return failure("token not yet valid");
    claims.not_before = *t;
  }
  if (sub) {
    std::string_view subject;
    if (sub->get(subject)) return failure("invalid sub claim");
    claims.subject = subject;
  }
  if (!options.issuer.empty()) {
    std::string_view issuer;
    if (!iss) return failure("wrong issuer");
    if (iss->get(issuer)) return failure("invalid iss claim");
    if (issuer != options.issuer) return failure("wrong issuer");
  }
  if (!options.audience.empty()) {
    if (!aud) return failure("wrong audience");
    std::string_view one;
    simdjson::dom::array several;
    bool found = false;
    if (!aud->get(one)) {
      found = one == options.audience;
    } else if (!aud->get(several)) {
      for (const simdjson::dom::element entry : several) {
        if (entry.get(one)) return failure("invalid aud claim");
        found = found || one == options.audience;
      }
    } else {
      return failure("invalid aud claim");
    }
    if (!found) return failure("wrong audience");
  }
  if (channels) {
    simdjson::dom::array list;
    if (channels->get(list)) return failure("invalid channels claim: not an array");
    std::vector<std::string_view> patterns;
    patterns.reserve(list.size());
    for (const simdjson::dom::element entry : list) {
      std::string_view pattern;
      if (entry.get(pattern)) {
        return failure(
            fmt::format("invalid channels claim: pattern {} is not a string", patterns.size()));
      }
      patterns.push_back(pattern);
    }
    std::string error;
    std::optional<ChannelPermissions> permissions = ChannelPermissions::parse(patterns, error);
    if (!permissions) return failure("invalid channels claim: " + error);
    claims.channels = std::move(*permissions);
  }
  return TokenCheck{std::move(claims), {}};
}

std::optional<std::string> options_problem(const JwtOptions& options) {
  if (options.leeway_seconds < 0) return "leeway must not be negative";
  return std::nullopt;
}

}  // namespace

// ---- ChannelPermissions ----------------------------------------------------------------------

std::optional<ChannelPermissions> ChannelPermissions::parse(
    std::span<const std::string_view> patterns, std::string& error) {
  ChannelPermissions result;
  result.patterns_.reserve(patterns.size());
  for (size_t i = 0; i < patterns.size(); ++i) {
    const std::string_view pattern = patterns[i];
    if (const std::optional<PatternProblem> problem = pattern_problem(pattern)) {
      error = problem->quote ? fmt::format("pattern {} \"{}\": {}", i, pattern, problem->reason)
                             : fmt::format("pattern {}: {}", i, problem->reason);
      return std::nullopt;
    }
    result.everything_ = result.everything_ || pattern == ">";
    result.patterns_.emplace_back(pattern);
  }
  return result;
}

bool ChannelPermissions::allows(std::string_view channel) const {
  if (!core::is_valid_channel_name(channel)) return false;
  if (everything_) return true;
  for (const std::string& pattern : patterns_) {
    if (pattern_matches(pattern, channel)) return true;
  }
  return false;
}

// ---- JwtVerifier -----------------------------------------------------------------------------

void detail::SecretFree::operator()(unsigned char* p) const {
  OPENSSL_clear_free(p, size);
}

void detail::PkeyFree::operator()(EVP_PKEY* p) const {
  EVP_PKEY_free(p);
}

JwtVerifier::JwtVerifier(JwtAlgorithm algorithm, JwtOptions options)
    : algorithm_(algorithm), options_(std::move(options)) {}

JwtVerifier::Result JwtVerifier::from_secret(std::string_view secret, JwtOptions options) {
  if (auto problem = options_problem(options)) return *problem;
  if (secret.empty()) return "hs256 secret is empty";
  if (secret.find("-----BEGIN") != std::string_view::npos) {
    return "hs256 secret is a pem block: a key that may be public is no secret (give a public "
           "key to from_public_key_pem for RS256/ES256)";
  }
  if (secret.size() < kMinSecretBytes) {
    return fmt::format("hs256 secret has {} bytes; at least {} are required (RFC 7518 3.2)",
                       secret.size(), kMinSecretBytes);
  }
  JwtVerifier verifier(JwtAlgorithm::kHS256, std::move(options));
  verifier.secret_ = std::unique_ptr<unsigned char, detail::SecretFree>(
      static_cast<unsigned char*>(OPENSSL_memdup(secret.data(), secret.size())),
      detail::SecretFree{secret.size()});
  if (!verifier.secret_) return "out of memory";
  return verifier;
}

JwtVerifier::Result JwtVerifier::from_public_key_pem(std::string_view pem, JwtOptions options) {
  if (auto problem = options_problem(options)) return *problem;
  if (pem.size() > static_cast<size_t>(INT_MAX)) return "public key pem is too large";
  const BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  // No passphrase callback: never prompt on a terminal for an encrypted block.
  const auto no_passphrase = [](char*, int, int, void*) { return 0; };
  std::unique_ptr<EVP_PKEY, detail::PkeyFree> key(
      bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, no_passphrase, nullptr) : nullptr);
  ERR_clear_error();
  if (!key) return "no public key in pem (expected -----BEGIN PUBLIC KEY-----)";

  JwtAlgorithm algorithm;
  if (EVP_PKEY_is_a(key.get(), "RSA")) {
    const int bits = EVP_PKEY_get_bits(key.get());
    if (bits < kMinRsaBits) {
      return fmt::format("rsa key has {} bits; at least {} are required (RFC 7518 3.3)", bits,
                         kMinRsaBits);
    }
    algorithm = JwtAlgorithm::kRS256;
  } else if (EVP_PKEY_is_a(key.get(), "EC")) {
    std::array<char, 80> curve{};
    size_t curve_size = 0;
    if (EVP_PKEY_get_group_name(key.get(), curve.data(), curve.size(), &curve_size) != 1) {
      ERR_clear_error();
      return "ec key without a named curve; ES256 needs P-256";
    }
    if (std::string_view(curve.data(), curve_size) != SN_X9_62_prime256v1) {
      return fmt::format("ec key on curve {} is not supported; ES256 needs P-256 (prime256v1)",
                         std::string_view(curve.data(), curve_size));
    }
    algorithm = JwtAlgorithm::kES256;
  } else {
    const char* type = EVP_PKEY_get0_type_name(key.get());
    return fmt::format("unsupported key type {}; expected RSA (RS256) or EC P-256 (ES256)",
                       type ? type : "unknown");
  }
  JwtVerifier verifier(algorithm, std::move(options));
  verifier.key_ = std::move(key);
  return verifier;
}

std::string_view JwtVerifier::algorithm_name() const {
  switch (algorithm_) {
    case JwtAlgorithm::kHS256:
      return "HS256";
    case JwtAlgorithm::kRS256:
      return "RS256";
    case JwtAlgorithm::kES256:
      return "ES256";
  }
  return "";
}

bool JwtVerifier::signature_ok(std::string_view signing_input, std::string_view signature) const {
  switch (algorithm_) {
    case JwtAlgorithm::kHS256: {
      if (!secret_) return false;  // moved from
      std::array<unsigned char, EVP_MAX_MD_SIZE> mac;
      unsigned int mac_size = 0;
      if (!HMAC(EVP_sha256(), secret_.get(), static_cast<int>(secret_.get_deleter().size),
                bytes(signing_input), signing_input.size(), mac.data(), &mac_size)) {
        ERR_clear_error();
        return false;
      }
      return signature.size() == mac_size &&
             CRYPTO_memcmp(mac.data(), signature.data(), mac_size) == 0;
    }
    case JwtAlgorithm::kRS256:
      if (!key_) return false;
      // PKCS #1 v1.5 signatures are exactly as long as the modulus.
      if (signature.size() != static_cast<size_t>(EVP_PKEY_get_size(key_.get()))) return false;
      return digest_verify(key_.get(), bytes(signature), signature.size(), signing_input);
    case JwtAlgorithm::kES256:
      if (!key_) return false;
      return es256_verify(key_.get(), signature, signing_input);
  }
  return false;
}

TokenCheck JwtVerifier::verify(std::string_view token, int64_t now_seconds,
                               simdjson::dom::parser& parser) const {
  if (token.size() > kMaxTokenBytes) return failure("token too long");
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return failure("malformed token");
  }
  std::string header, payload, signature;
  if (!base64url_decode(token.substr(0, dot1), header) ||
      !base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1), payload) ||
      !base64url_decode(token.substr(dot2 + 1), signature)) {
    return failure("malformed token");
  }
  if (auto problem = check_header(header, parser, algorithm_name())) return failure(*problem);
  // The signature covers the encoded header and payload exactly as received (RFC 7515 5.2).
  if (!signature_ok(token.substr(0, dot2), signature)) return failure("bad signature");
  return read_claims(payload, now_seconds, options_, parser);
}

}  // namespace odin::auth
