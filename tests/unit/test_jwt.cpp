// Unit tests of JWT verification and channel patterns (auth/jwt.hpp). Tokens are signed here
// with OpenSSL directly (HMAC, and RSA-2048 / EC P-256 keys generated once per run), so each
// test states exactly what is wrong with its token; the RFC 7515 appendix examples are checked
// too, as answers produced elsewhere.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <simdjson.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/jwt.hpp"

namespace odin::auth {
namespace {

constexpr int64_t kNow = 1'700'000'000;
constexpr std::string_view kSecret = "test secret: 32 bytes or more, as RFC 7518 asks";
constexpr std::string_view kBadPatternChar = "character not allowed (A-Z a-z 0-9 _ - . : * >)";

template <auto Free>
struct OpensslFree {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, OpensslFree<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, OpensslFree<BIO_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpensslFree<EVP_MD_CTX_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, OpensslFree<ECDSA_SIG_free>>;

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string b64url(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t bits = 0;
  int bit_count = 0;
  for (unsigned char c : data) {
    bits = (bits << 8) | c;
    bit_count += 8;
    while (bit_count >= 6) {
      bit_count -= 6;
      out.push_back(kAlphabet[(bits >> bit_count) & 63]);
    }
  }
  if (bit_count > 0) out.push_back(kAlphabet[(bits << (6 - bit_count)) & 63]);
  return out;
}

std::string from_hex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

// ---- keys and signatures ---------------------------------------------------------------------

PkeyPtr rsa_key(size_t bits) {
  return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
}

// EVP_PKEY_Q_keygen takes a size only for plain RSA.
PkeyPtr rsa_pss_key(unsigned bits) {
  using CtxPtr = std::unique_ptr<EVP_PKEY_CTX, OpensslFree<EVP_PKEY_CTX_free>>;
  const CtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA-PSS", nullptr));
  EVP_PKEY* key = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), static_cast<int>(bits)) != 1 ||
      EVP_PKEY_generate(ctx.get(), &key) != 1)
    return nullptr;
  return PkeyPtr(key);
}

PkeyPtr ec_key(const char* curve) {
  return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string public_pem(EVP_PKEY* key) {
  const BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) return "";
  return bio_contents(bio.get());
}

std::string private_pem(EVP_PKEY* key) {
  const BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return "";
  return bio_contents(bio.get());
}

// RSA key generation takes a while (longer under ASan): one set of keys for the whole run.
struct Keys {
  PkeyPtr rsa = rsa_key(2048);
  PkeyPtr other_rsa = rsa_key(2048);
  PkeyPtr ec = ec_key("P-256");
  PkeyPtr other_ec = ec_key("P-256");
  std::string rsa_pem = public_pem(rsa.get());
  std::string ec_pem = public_pem(ec.get());
};

const Keys& keys() {
  static const Keys k;
  return k;
}

std::string hmac_sha256(std::string_view secret, std::string_view input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), bytes(input),
            input.size(), mac, &size))
    return "";
  return std::string(reinterpret_cast<char*>(mac), size);
}

// PKCS #1 v1.5 for RSA keys, DER ECDSA for EC keys.
std::string digest_sign(EVP_PKEY* key, std::string_view input) {
  const MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t size = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &size, bytes(input), input.size()) != 1)
    return "";
  std::string signature(size, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                     bytes(input), input.size()) != 1)
    return "";
  signature.resize(size);
  return signature;
}

// The JWS form of an ECDSA P-256 signature: R and S as 32 bytes each (RFC 7518 3.4).
std::string es256_sign(EVP_PKEY* key, std::string_view input) {
  const std::string der = digest_sign(key, input);
  const unsigned char* p = bytes(der);
  const EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return "";
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string raw(64, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(r, out, 32) != 32 || BN_bn2binpad(s, out + 32, 32) != 32) return "";
  return raw;
}

// ---- tokens ----------------------------------------------------------------------------------

std::string header_for(std::string_view alg) {
  return R"({"alg":")" + std::string(alg) + R"(","typ":"JWT"})";
}

// header.payload.signature where `sign` gets the signing input (the first two parts).
template <typename Sign>
std::string make_token(std::string_view header, std::string_view payload, Sign sign) {
  const std::string input = b64url(header) + "." + b64url(payload);
  return input + "." + b64url(sign(input));
}

std::string hs256_token(std::string_view payload, std::string_view header = header_for("HS256"),
                        std::string_view secret = kSecret) {
  return make_token(header, payload, [&](std::string_view in) { return hmac_sha256(secret, in); });
}

std::string rs256_token(std::string_view payload, std::string_view header = header_for("RS256"),
                        EVP_PKEY* key = keys().rsa.get()) {
  return make_token(header, payload, [&](std::string_view in) { return digest_sign(key, in); });
}

std::string es256_token(std::string_view payload, std::string_view header = header_for("ES256"),
                        EVP_PKEY* key = keys().ec.get()) {
  return make_token(header, payload, [&](std::string_view in) { return es256_sign(key, in); });
}

std::string with_exp(int64_t exp) {
  return R"({"exp":)" + std::to_string(exp) + "}";
}

// The three parts of a token, to take apart and reassemble.
struct Parts {
  std::string header, payload, signature;
  explicit Parts(std::string_view token) {
    const size_t dot1 = token.find('.');
    const size_t dot2 = token.find('.', dot1 + 1);
    header = token.substr(0, dot1);
    payload = token.substr(dot1 + 1, dot2 - dot1 - 1);
    signature = token.substr(dot2 + 1);
  }
  std::string join() const { return header + "." + payload + "." + signature; }
};

// ---- verifiers -------------------------------------------------------------------------------

JwtVerifier must(JwtVerifier::Result result) {
  if (const auto* error = std::get_if<std::string>(&result)) {
    ADD_FAILURE() << "verifier refused: " << *error;
  }
  return std::get<JwtVerifier>(std::move(result));
}

std::string refusal(const JwtVerifier::Result& result) {
  const auto* error = std::get_if<std::string>(&result);
  return error ? *error : "accepted";
}

JwtOptions make_options(std::string audience, std::string issuer, int64_t leeway_seconds) {
  JwtOptions options;
  options.audience = std::move(audience);
  options.issuer = std::move(issuer);
  options.leeway_seconds = leeway_seconds;
  return options;
}

JwtVerifier hs256_verifier(JwtOptions options = {}) {
  return must(JwtVerifier::from_secret(kSecret, std::move(options)));
}
JwtVerifier rs256_verifier(JwtOptions options = {}) {
  return must(JwtVerifier::from_public_key_pem(keys().rsa_pem, std::move(options)));
}
JwtVerifier es256_verifier(JwtOptions options = {}) {
  return must(JwtVerifier::from_public_key_pem(keys().ec_pem, std::move(options)));
}

// "ok" for valid claims, else the error (each test compares the whole string).
std::string outcome(const TokenCheck& check) {
  if (check.claims) return check.error.empty() ? "ok" : "claims and error: " + check.error;
  return check.error.empty() ? "neither claims nor error" : check.error;
}

class JwtVerify : public testing::Test {
 protected:
  std::string check(const JwtVerifier& verifier, std::string_view token, int64_t now = kNow) {
    return outcome(verifier.verify(token, now, parser_));
  }
  TokenClaims claims(const JwtVerifier& verifier, std::string_view token, int64_t now = kNow) {
    TokenCheck result = verifier.verify(token, now, parser_);
    EXPECT_TRUE(result.claims) << result.error;
    return result.claims ? std::move(*result.claims) : TokenClaims{};
  }

  simdjson::dom::parser parser_;
};

const std::string kFullPayload =
    R"({"sub":"alice","iat":1699999000,"exp":)" + std::to_string(kNow + 60) + R"(,"nbf":)" +
    std::to_string(kNow - 60) + R"(,"channels":["prices.>","news"],"extra":{"x":[1,2]}})";

void expect_full_claims(const TokenClaims& c) {
  EXPECT_EQ(c.subject, "alice");
  EXPECT_EQ(c.expires_at, kNow + 60);
  EXPECT_EQ(c.not_before, kNow - 60);
  EXPECT_EQ(c.channels.size(), 2u);
  EXPECT_FALSE(c.channels.allows_everything());
  EXPECT_TRUE(c.channels.allows("prices.BTC"));
  EXPECT_TRUE(c.channels.allows("news"));
  EXPECT_FALSE(c.channels.allows("newsX"));
  EXPECT_FALSE(c.channels.allows("prices"));
}

// ---- valid tokens ----------------------------------------------------------------------------

TEST_F(JwtVerify, ValidHs256) {
  const JwtVerifier v = hs256_verifier();
  EXPECT_EQ(v.algorithm(), JwtAlgorithm::kHS256);
  EXPECT_EQ(v.algorithm_name(), "HS256");
  EXPECT_EQ(check(v, hs256_token(kFullPayload)), "ok");
  expect_full_claims(claims(v, hs256_token(kFullPayload)));
}

TEST_F(JwtVerify, ValidRs256) {
  const JwtVerifier v = rs256_verifier();
  EXPECT_EQ(v.algorithm(), JwtAlgorithm::kRS256);
  EXPECT_EQ(v.algorithm_name(), "RS256");
  EXPECT_EQ(check(v, rs256_token(kFullPayload)), "ok");
  expect_full_claims(claims(v, rs256_token(kFullPayload)));
}

TEST_F(JwtVerify, ValidEs256) {
  const JwtVerifier v = es256_verifier();
  EXPECT_EQ(v.algorithm(), JwtAlgorithm::kES256);
  EXPECT_EQ(v.algorithm_name(), "ES256");
  // ECDSA signatures are randomised: several, so that R or S with a leading zero byte (1 in 256
  // each) has a chance to show up.
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(check(v, es256_token(kFullPayload)), "ok") << "signature " << i;
  }
  expect_full_claims(claims(v, es256_token(kFullPayload)));
}

TEST_F(JwtVerify, MinimalTokenHasNoClaims) {
  const TokenClaims c = claims(hs256_verifier(), hs256_token("{}", R"({"alg":"HS256"})"));
  EXPECT_EQ(c.subject, "");
  EXPECT_EQ(c.expires_at, 0);
  EXPECT_EQ(c.not_before, 0);
  EXPECT_EQ(c.channels.size(), 0u);
}

// RFC 7515 A.1 (HS256, also RFC 7519 3.1): header and payload with CRLF and spaces, a 64-byte key.
TEST_F(JwtVerify, Rfc7515AppendixA1Hs256) {
  const std::string key = from_hex(
      "0323354b2b0fa5bc837e0665777ba68f5ab328e6f054c928a90f84b2d2502ebfd3fb5a92d20647ef968ab4c3"
      "77623d223d2e2172052e4f08c0cd9af567d080a3");
  const JwtVerifier v = must(JwtVerifier::from_secret(key));
  const std::string token =
      "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
      "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cn"
      "VlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  EXPECT_EQ(check(v, token, 1300819379), "ok");
  EXPECT_EQ(claims(v, token, 1300819379).expires_at, 1300819380);
  EXPECT_EQ(check(v, token, 1300819380), "token expired");
}

// RFC 7515 A.3 (ES256): checks the R || S signature layout against a signature made elsewhere.
TEST_F(JwtVerify, Rfc7515AppendixA3Es256) {
  constexpr std::string_view kPem =
      "-----BEGIN PUBLIC KEY-----\n"
      "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7\n"
      "6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==\n"
      "-----END PUBLIC KEY-----\n";
  const JwtVerifier v = must(JwtVerifier::from_public_key_pem(kPem));
  ASSERT_EQ(v.algorithm(), JwtAlgorithm::kES256);
  const std::string token =
      "eyJhbGciOiJFUzI1NiJ9."
      "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cn"
      "VlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
  EXPECT_EQ(check(v, token, 1300819379), "ok");
  EXPECT_EQ(check(v, token, 1300819380), "token expired");
  // R and S swapped: same bytes, wrong layout.
  Parts swapped(token);
  const std::string sig = from_hex(
      "0ed1215379636c483c2f7f155807d402a3b228033af97c7e17819ac3169ea665"
      "c50a07d38c3c70e5d8f12daf084a5480a66590c5f293509a8f3f7f8a83a354d5");
  ASSERT_EQ(b64url(sig), swapped.signature) << "the RFC's signature bytes";
  swapped.signature = b64url(sig.substr(32) + sig.substr(0, 32));
  EXPECT_EQ(check(v, swapped.join(), 1300819379), "bad signature");
}

// ---- time ------------------------------------------------------------------------------------

TEST_F(JwtVerify, Expired) {
  const JwtVerifier v = hs256_verifier();
  const std::string token = hs256_token(with_exp(kNow));
  EXPECT_EQ(check(v, token, kNow - 1), "ok");
  EXPECT_EQ(check(v, token, kNow), "token expired");  // exp is the first instant it is invalid
  EXPECT_EQ(check(v, token, kNow + 3600), "token expired");
  EXPECT_EQ(check(v, hs256_token(with_exp(-1))), "token expired");
  EXPECT_EQ(check(v, hs256_token(with_exp(0))), "token expired");
}

TEST_F(JwtVerify, NotYetValid) {
  const JwtVerifier v = hs256_verifier();
  const std::string token = hs256_token(R"({"nbf":)" + std::to_string(kNow) + "}");
  EXPECT_EQ(check(v, token, kNow - 1), "token not yet valid");
  EXPECT_EQ(check(v, token, kNow - 3600), "token not yet valid");
  EXPECT_EQ(check(v, token, kNow), "ok");
  EXPECT_EQ(claims(v, token).not_before, kNow);
}

TEST_F(JwtVerify, LeewayAppliesToExpAndNbf) {
  const JwtVerifier v = hs256_verifier(make_options("", "", 30));
  EXPECT_EQ(v.options().leeway_seconds, 30);
  const std::string expiring = hs256_token(with_exp(kNow));
  EXPECT_EQ(check(v, expiring, kNow + 29), "ok");
  EXPECT_EQ(check(v, expiring, kNow + 30), "token expired");
  const std::string starting = hs256_token(R"({"nbf":)" + std::to_string(kNow) + "}");
  EXPECT_EQ(check(v, starting, kNow - 30), "ok");
  EXPECT_EQ(check(v, starting, kNow - 31), "token not yet valid");
  // The claims report the token's own times, not the leeway-adjusted ones.
  EXPECT_EQ(claims(v, expiring, kNow + 29).expires_at, kNow);
}

TEST_F(JwtVerify, FractionalTimesRoundUp) {
  const JwtVerifier v = hs256_verifier();
  const std::string exp = hs256_token(R"({"exp":)" + std::to_string(kNow) + ".5}");
  EXPECT_EQ(check(v, exp, kNow), "ok");
  EXPECT_EQ(claims(v, exp, kNow).expires_at, kNow + 1);
  EXPECT_EQ(check(v, exp, kNow + 1), "token expired");
  EXPECT_EQ(check(v, hs256_token(R"({"exp":)" + std::to_string(kNow - 1) + ".5}")),
            "token expired");
  const std::string nbf = hs256_token(R"({"nbf":)" + std::to_string(kNow) + ".25}");
  EXPECT_EQ(check(v, nbf, kNow), "token not yet valid");
  EXPECT_EQ(check(v, nbf, kNow + 1), "ok");
  // Exponent notation: 1.7e9 is kNow exactly, 1.7000001e9 is kNow + 100.
  EXPECT_EQ(check(v, hs256_token(R"({"exp":1.7e9})")), "token expired");
  EXPECT_EQ(claims(v, hs256_token(R"({"exp":1.7000001e9})")).expires_at, kNow + 100);
}

TEST_F(JwtVerify, TimesBeyondInt64Saturate) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const JwtVerifier v = hs256_verifier(make_options("", "", 60));
  EXPECT_EQ(claims(v, hs256_token(R"({"exp":1e300})")).expires_at, kMax);
  EXPECT_EQ(claims(v, hs256_token(R"({"exp":18446744073709551615})")).expires_at, kMax);
  EXPECT_EQ(claims(v, hs256_token(R"({"exp":9223372036854775807})")).expires_at, kMax);
  EXPECT_EQ(check(v, hs256_token(R"({"nbf":-1e300})")), "ok");
  EXPECT_EQ(check(v, hs256_token(R"({"nbf":-9223372036854775808})")), "ok");
  EXPECT_EQ(check(v, hs256_token(R"({"exp":-1e300})")), "token expired");
  EXPECT_EQ(check(v, hs256_token(R"({"nbf":1e300})")), "token not yet valid");
}

// The gateway turns `exp` into milliseconds (the expiry check of the sweep, the `authenticated`
// reply): a far-future `exp` must stay far in the future, not wrap into the past (the old
// `(exp + leeway) * 1000` overflowed, closed the connection at once and is undefined behaviour).
TEST_F(JwtVerify, FarFutureExpiryInMillisecondsSaturates) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(seconds_to_ms(kNow), kNow * 1000);
  EXPECT_EQ(seconds_to_ms(kMax / 1000), kMax / 1000 * 1000);
  EXPECT_EQ(seconds_to_ms(kMax / 1000 + 1), kMax);
  EXPECT_EQ(seconds_to_ms(kMax), kMax);
  EXPECT_EQ(seconds_to_ms(kMin / 1000 - 1), kMin);
  EXPECT_EQ(seconds_to_ms(kMin), kMin);

  const JwtVerifier v = hs256_verifier(make_options("", "", 3600));
  for (const char* exp : {"1e300", "9223372036854775807", "9223372036854775", "9223372036854776",
                          "9223372036854774"}) {
    const TokenClaims c = claims(v, hs256_token(std::string(R"({"exp":)") + exp + "}"));
    SCOPED_TRACE(exp);
    EXPECT_GT(expiry_ms(c, 3600), kNow * 1000);
    EXPECT_GE(expiry_ms(c, 3600), seconds_to_ms(c.expires_at));
    EXPECT_GT(seconds_to_ms(c.expires_at), kNow * 1000);
  }
  const TokenClaims soon = claims(v, hs256_token(with_exp(kNow + 60)));
  EXPECT_EQ(expiry_ms(soon, 30), (kNow + 90) * 1000);
  EXPECT_EQ(expiry_ms(TokenClaims{}, 3600), kMax);  // no `exp`: never
}

TEST_F(JwtVerify, TimesMustBeNumbers) {
  const JwtVerifier v = hs256_verifier();
  EXPECT_EQ(check(v, hs256_token(R"({"exp":"1700000060"})")), "invalid exp claim");
  EXPECT_EQ(check(v, hs256_token(R"({"exp":null})")), "invalid exp claim");
  EXPECT_EQ(check(v, hs256_token(R"({"exp":true})")), "invalid exp claim");
  EXPECT_EQ(check(v, hs256_token(R"({"exp":[1800000000]})")), "invalid exp claim");
  EXPECT_EQ(check(v, hs256_token(R"({"nbf":"0"})")), "invalid nbf claim");
  EXPECT_EQ(check(v, hs256_token(R"({"nbf":{}})")), "invalid nbf claim");
}

TEST_F(JwtVerify, DuplicateClaimsAreRefused) {
  const JwtVerifier v = hs256_verifier();
  // simdjson would find the first; RFC 7519 4 allows only the last or a refusal.
  EXPECT_EQ(check(v, hs256_token(R"({"exp":1,"exp":1800000000})")), "duplicate exp claim");
  EXPECT_EQ(check(v, hs256_token(R"({"channels":[],"channels":[">"]})")),
            "duplicate channels claim");
  EXPECT_EQ(check(v, hs256_token(R"({"sub":"a","sub":"b"})")), "duplicate sub claim");
  // A claim nobody reads may repeat.
  EXPECT_EQ(check(v, hs256_token(R"({"x":1,"x":2})")), "ok");
}

// ---- signatures ------------------------------------------------------------------------------

TEST_F(JwtVerify, WrongSecret) {
  const std::string token =
      hs256_token(with_exp(kNow + 60), header_for("HS256"), "another secret of 32 bytes or more!");
  EXPECT_EQ(check(hs256_verifier(), token), "bad signature");
}

TEST_F(JwtVerify, WrongKey) {
  const std::string payload = with_exp(kNow + 60);
  EXPECT_EQ(
      check(rs256_verifier(), rs256_token(payload, header_for("RS256"), keys().other_rsa.get())),
      "bad signature");
  EXPECT_EQ(
      check(es256_verifier(), es256_token(payload, header_for("ES256"), keys().other_ec.get())),
      "bad signature");
}

TEST_F(JwtVerify, TamperedPayload) {
  const std::string original = R"({"sub":"alice","channels":["news"]})";
  const std::string forged = R"({"sub":"alice","channels":[">"]})";
  struct Case {
    JwtVerifier verifier;
    std::string token;
  };
  Case cases[] = {{hs256_verifier(), hs256_token(original)},
                  {rs256_verifier(), rs256_token(original)},
                  {es256_verifier(), es256_token(original)}};
  for (const Case& c : cases) {
    ASSERT_EQ(check(c.verifier, c.token), "ok") << c.verifier.algorithm_name();
    Parts parts(c.token);
    parts.payload = b64url(forged);
    EXPECT_EQ(check(c.verifier, parts.join()), "bad signature") << c.verifier.algorithm_name();
  }
}

TEST_F(JwtVerify, TamperedHeader) {
  struct Case {
    JwtVerifier verifier;
    std::string token;
  };
  Case cases[] = {{hs256_verifier(), hs256_token("{}")},
                  {rs256_verifier(), rs256_token("{}")},
                  {es256_verifier(), es256_token("{}")}};
  for (const Case& c : cases) {
    Parts parts(c.token);
    const std::string alg(c.verifier.algorithm_name());
    parts.header = b64url(R"({"alg":")" + alg + R"(","typ":"JWT","kid":"x"})");
    EXPECT_EQ(check(c.verifier, parts.join()), "bad signature") << alg;
  }
}

TEST_F(JwtVerify, TamperedOrTruncatedSignature) {
  struct Case {
    JwtVerifier verifier;
    std::string token;
  };
  Case cases[] = {{hs256_verifier(), hs256_token("{}")},
                  {rs256_verifier(), rs256_token("{}")},
                  {es256_verifier(), es256_token("{}")}};
  for (const Case& c : cases) {
    const std::string alg(c.verifier.algorithm_name());
    const Parts parts(c.token);
    Parts flipped = parts;
    flipped.signature[5] = flipped.signature[5] == 'A' ? 'B' : 'A';
    EXPECT_EQ(check(c.verifier, flipped.join()), "bad signature") << alg;
    Parts empty = parts;
    empty.signature.clear();
    EXPECT_EQ(check(c.verifier, empty.join()), "bad signature") << alg;
    // Four characters off the front are exactly three bytes, and leave a canonical tail.
    Parts shorter = parts;
    shorter.signature.erase(0, 4);
    EXPECT_EQ(check(c.verifier, shorter.join()), "bad signature") << alg;
  }
}

// Each byte of the signature is checked: the first, the last and every one between.
TEST_F(JwtVerify, EverySignatureByteCounts) {
  const std::string payload = R"({"channels":[">"]})";
  using Signer = std::string (*)(std::string_view);
  struct Case {
    JwtVerifier verifier;
    std::string alg;
    Signer sign;
  };
  Case cases[] = {
      {hs256_verifier(), "HS256", [](std::string_view in) { return hmac_sha256(kSecret, in); }},
      {rs256_verifier(), "RS256",
       [](std::string_view in) { return digest_sign(keys().rsa.get(), in); }},
      {es256_verifier(), "ES256",
       [](std::string_view in) { return es256_sign(keys().ec.get(), in); }},
  };
  for (const Case& c : cases) {
    const size_t size = c.sign("x").size();
    ASSERT_GT(size, 0u) << c.alg;
    for (size_t i = 0; i < size; ++i) {
      const std::string token = make_token(header_for(c.alg), payload, [&](std::string_view in) {
        std::string signature = c.sign(in);
        signature[i] = static_cast<char>(signature[i] ^ 0x01);
        return signature;
      });
      ASSERT_EQ(check(c.verifier, token), "bad signature") << c.alg << " byte " << i;
    }
    EXPECT_EQ(check(c.verifier, make_token(header_for(c.alg), payload, c.sign)), "ok") << c.alg;
  }
}

TEST_F(JwtVerify, Es256SignatureMustBeRawRAndS) {
  const JwtVerifier v = es256_verifier();
  // A DER signature, as OpenSSL makes it, is not the JWS form.
  const std::string der = make_token(header_for("ES256"), "{}", [](std::string_view in) {
    return digest_sign(keys().ec.get(), in);
  });
  EXPECT_EQ(check(v, der), "bad signature");
  // Zero R and S, and the right signature with a byte appended.
  const std::string zeros =
      make_token(header_for("ES256"), "{}", [](std::string_view) { return std::string(64, 0); });
  EXPECT_EQ(check(v, zeros), "bad signature");
  const std::string longer = make_token(header_for("ES256"), "{}", [](std::string_view in) {
    return es256_sign(keys().ec.get(), in) + '\0';
  });
  EXPECT_EQ(check(v, longer), "bad signature");
}

// ---- algorithms ------------------------------------------------------------------------------

TEST_F(JwtVerify, AlgNoneIsRefused) {
  const JwtVerifier verifiers[] = {hs256_verifier(), rs256_verifier(), es256_verifier()};
  for (const JwtVerifier& v : verifiers) {
    for (std::string_view alg : {"none", "None", "NONE", ""}) {
      const std::string token = b64url(R"({"alg":")" + std::string(alg) + R"(","typ":"JWT"})") +
                                "." + b64url(R"({"channels":[">"]})") + ".";
      EXPECT_EQ(check(v, token), "unsupported alg") << v.algorithm_name() << " alg " << alg;
    }
  }
}

TEST_F(JwtVerify, AlgMustBeTheVerifiers) {
  EXPECT_EQ(check(hs256_verifier(), rs256_token("{}")), "unsupported alg");
  EXPECT_EQ(check(hs256_verifier(), es256_token("{}")), "unsupported alg");
  EXPECT_EQ(check(rs256_verifier(), es256_token("{}")), "unsupported alg");
  EXPECT_EQ(check(es256_verifier(), rs256_token("{}")), "unsupported alg");
  // Names are case-sensitive, and other SHA sizes are other algorithms.
  EXPECT_EQ(check(hs256_verifier(), hs256_token("{}", R"({"alg":"hs256"})")), "unsupported alg");
  EXPECT_EQ(check(hs256_verifier(), hs256_token("{}", R"({"alg":"HS512"})")), "unsupported alg");
  EXPECT_EQ(check(rs256_verifier(), rs256_token("{}", R"({"alg":"PS256"})")), "unsupported alg");
}

// The classic confusion: an HS256 token whose HMAC key is the server's public key, sent to a
// verifier holding that key for RS256 (or ES256).
TEST_F(JwtVerify, PublicKeyAsHmacSecretIsRefused) {
  const std::string payload = R"({"sub":"mallory","channels":[">"]})";
  EXPECT_EQ(check(rs256_verifier(), hs256_token(payload, header_for("HS256"), keys().rsa_pem)),
            "unsupported alg");
  EXPECT_EQ(check(es256_verifier(), hs256_token(payload, header_for("HS256"), keys().ec_pem)),
            "unsupported alg");
  // The same MAC under the verifier's own alg name is just a bad signature.
  EXPECT_EQ(check(rs256_verifier(), hs256_token(payload, header_for("RS256"), keys().rsa_pem)),
            "bad signature");
  EXPECT_EQ(check(es256_verifier(), hs256_token(payload, header_for("ES256"), keys().ec_pem)),
            "bad signature");
}

// ---- header ----------------------------------------------------------------------------------

TEST_F(JwtVerify, HeaderAlg) {
  const JwtVerifier v = hs256_verifier();
  EXPECT_EQ(check(v, hs256_token("{}", R"({"typ":"JWT"})")), "malformed header");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":256})")), "malformed header");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":null})")), "malformed header");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":["HS256"]})")), "malformed header");
  // Duplicates: another parser might have read the other one.
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":"HS256","alg":"none"})")), "malformed header");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":"HS256","alg":"HS256"})")), "malformed header");
  // An escaped name is the same name.
  EXPECT_EQ(check(v, hs256_token("{}", R"({"\u0061lg":"HS256"})")), "ok");
}

TEST_F(JwtVerify, HeaderTyp) {
  const JwtVerifier v = hs256_verifier();
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":"HS256","typ":"JWT"})")), "ok");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":"HS256","typ":"jwt"})")), "ok");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"typ":"Jwt","alg":"HS256"})")), "ok");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":"HS256","typ":"at+jwt"})")), "unsupported typ");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":"HS256","typ":"JWS"})")), "unsupported typ");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":"HS256","typ":""})")), "unsupported typ");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":"HS256","typ":1})")), "malformed header");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":"HS256","typ":"JWT","typ":"JWT"})")),
            "malformed header");
}

TEST_F(JwtVerify, HeaderCritIsRefused) {
  const JwtVerifier v = hs256_verifier();
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":"HS256","crit":["exp"],"exp":1})")),
            "unsupported crit header");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":"HS256","crit":[]})")), "unsupported crit header");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":"HS256","b64":false,"crit":["b64"]})")),
            "unsupported crit header");
}

TEST_F(JwtVerify, HeaderKeysAreIgnored) {
  // A token naming its own key gets checked with the configured key all the same.
  const std::string header =
      R"({"alg":"RS256","kid":"k1","jku":"https://evil.example/jwks","jwk":{"kty":"RSA"}})";
  EXPECT_EQ(check(rs256_verifier(), rs256_token("{}", header)), "ok");
  EXPECT_EQ(check(rs256_verifier(), rs256_token("{}", header, keys().other_rsa.get())),
            "bad signature");
}

// ---- malformed tokens ------------------------------------------------------------------------

TEST_F(JwtVerify, MalformedStructure) {
  const JwtVerifier v = hs256_verifier();
  const std::string good = hs256_token("{}");
  ASSERT_EQ(check(v, good), "ok");
  const Parts parts(good);
  EXPECT_EQ(check(v, ""), "malformed token");
  EXPECT_EQ(check(v, "garbage"), "malformed token");
  EXPECT_EQ(check(v, parts.header + "." + parts.payload), "malformed token");
  EXPECT_EQ(check(v, good + "." + parts.signature), "malformed token");
  EXPECT_EQ(check(v, good + "."), "malformed token");
  EXPECT_EQ(check(v, "." + good), "malformed token");
  EXPECT_EQ(check(v, "..."), "malformed token");
  // Three empty parts are well-formed base64url; the empty header is not JSON.
  EXPECT_EQ(check(v, ".."), "malformed header");
}

TEST_F(JwtVerify, MalformedBase64) {
  const JwtVerifier v = hs256_verifier();
  const Parts parts(hs256_token(R"({"sub":"a"})"));
  ASSERT_EQ(check(v, parts.join()), "ok");
  ASSERT_EQ(parts.signature.size(), 43u);  // 32 bytes: two spare bits in the last character
  // Characters outside the base64url alphabet, in each part.
  for (char bad : {'+', '/', '=', ' ', '\n', '\0', '*', '\x80'}) {
    for (int part = 0; part < 3; ++part) {
      Parts p = parts;
      std::string& s = part == 0 ? p.header : part == 1 ? p.payload : p.signature;
      s.insert(s.begin() + 2, bad);
      EXPECT_EQ(check(v, p.join()), "malformed token") << "char " << int(bad) << " part " << part;
    }
  }
  // Padding, which JWS leaves out.
  Parts padded = parts;
  padded.signature += std::string(4 - parts.signature.size() % 4, '=');
  EXPECT_EQ(check(v, padded.join()), "malformed token");
  // A length that leaves a lone character (6 bits are no byte).
  Parts lone = parts;
  lone.signature.resize(41);
  EXPECT_EQ(check(v, lone.join()), "malformed token");
  // Set bits after the last byte: the same bytes, a second spelling.
  Parts loose = parts;
  const std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char& last = loose.signature.back();
  last = alphabet[alphabet.find(last) + 1];
  EXPECT_EQ(check(v, loose.join()), "malformed token");
}

TEST_F(JwtVerify, MalformedJson) {
  const JwtVerifier v = hs256_verifier();
  EXPECT_EQ(check(v, hs256_token("{}", "not json")), "malformed header");
  EXPECT_EQ(check(v, hs256_token("{}", R"(["HS256"])")), "malformed header");
  EXPECT_EQ(check(v, hs256_token("{}", R"("HS256")")), "malformed header");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":"HS256")")), "malformed header");
  EXPECT_EQ(check(v, hs256_token("{}", R"({"alg":"HS256"} {})")), "malformed header");
  // Payloads are read only after the signature checks out.
  EXPECT_EQ(check(v, hs256_token("not json")), "malformed payload");
  EXPECT_EQ(check(v, hs256_token("")), "malformed payload");
  EXPECT_EQ(check(v, hs256_token("[]")), "malformed payload");
  EXPECT_EQ(check(v, hs256_token("42")), "malformed payload");
  EXPECT_EQ(check(v, hs256_token(R"("claims")")), "malformed payload");
  EXPECT_EQ(check(v, hs256_token("{}{}")), "malformed payload");
  EXPECT_EQ(check(v, hs256_token(R"({"sub":"a)")), "malformed payload");
  EXPECT_EQ(check(v, hs256_token("{\"sub\":\"\xff\"}")), "malformed payload");  // not UTF-8
}

TEST_F(JwtVerify, TokenLengthLimit) {
  const JwtVerifier v = hs256_verifier();
  // Find a token of exactly kMaxTokenBytes by padding the payload and, for the lengths base64
  // cannot make, the header.
  std::string token;
  for (size_t kid = 0; kid < 4 && token.size() != kMaxTokenBytes; ++kid) {
    const std::string header = R"({"alg":"HS256","kid":")" + std::string(kid, 'k') + "\"}";
    for (size_t pad = 6000; pad < 6200 && token.size() != kMaxTokenBytes; ++pad) {
      token = hs256_token(R"({"pad":")" + std::string(pad, 'x') + "\"}", header);
    }
  }
  ASSERT_EQ(token.size(), kMaxTokenBytes);
  EXPECT_EQ(check(v, token), "ok");
  EXPECT_EQ(check(v, token + "A"), "token too long");
  EXPECT_EQ(check(v, std::string(1'000'000, 'A')), "token too long");
}

// ---- subject, issuer, audience ---------------------------------------------------------------

TEST_F(JwtVerify, Subject) {
  const JwtVerifier v = hs256_verifier();
  EXPECT_EQ(claims(v, hs256_token(R"({"sub":"user-42"})")).subject, "user-42");
  EXPECT_EQ(claims(v, hs256_token(R"({"sub":"caf\u00e9"})")).subject, "caf\xc3\xa9");
  EXPECT_EQ(check(v, hs256_token(R"({"sub":42})")), "invalid sub claim");
  EXPECT_EQ(check(v, hs256_token(R"({"sub":null})")), "invalid sub claim");
}

TEST_F(JwtVerify, Issuer) {
  const JwtVerifier v = hs256_verifier(make_options("", "https://auth.example", 0));
  EXPECT_EQ(check(v, hs256_token(R"({"iss":"https://auth.example"})")), "ok");
  EXPECT_EQ(check(v, hs256_token(R"({"iss":"https://auth.example/"})")), "wrong issuer");
  EXPECT_EQ(check(v, hs256_token(R"({"iss":"https://AUTH.example"})")), "wrong issuer");
  EXPECT_EQ(check(v, hs256_token("{}")), "wrong issuer");
  EXPECT_EQ(check(v, hs256_token(R"({"iss":["https://auth.example"]})")), "invalid iss claim");
  // Not configured: not checked.
  EXPECT_EQ(check(hs256_verifier(), hs256_token(R"({"iss":"anyone"})")), "ok");
  EXPECT_EQ(check(hs256_verifier(), hs256_token(R"({"iss":42})")), "ok");
}

TEST_F(JwtVerify, AudienceString) {
  const JwtVerifier v = hs256_verifier(make_options("odin-ws", "", 0));
  EXPECT_EQ(check(v, hs256_token(R"({"aud":"odin-ws"})")), "ok");
  EXPECT_EQ(check(v, hs256_token(R"({"aud":"other"})")), "wrong audience");
  EXPECT_EQ(check(v, hs256_token(R"({"aud":"ODIN-WS"})")), "wrong audience");
  EXPECT_EQ(check(v, hs256_token(R"({"aud":""})")), "wrong audience");
  EXPECT_EQ(check(v, hs256_token("{}")), "wrong audience");
  EXPECT_EQ(check(v, hs256_token(R"({"aud":7})")), "invalid aud claim");
  EXPECT_EQ(check(v, hs256_token(R"({"aud":null})")), "invalid aud claim");
}

TEST_F(JwtVerify, AudienceArray) {
  const JwtVerifier v = hs256_verifier(make_options("odin-ws", "", 0));
  EXPECT_EQ(check(v, hs256_token(R"({"aud":["odin-ws"]})")), "ok");
  EXPECT_EQ(check(v, hs256_token(R"({"aud":["api","odin-ws"]})")), "ok");
  EXPECT_EQ(check(v, hs256_token(R"({"aud":["odin-ws","api"]})")), "ok");
  EXPECT_EQ(check(v, hs256_token(R"({"aud":["api","web"]})")), "wrong audience");
  EXPECT_EQ(check(v, hs256_token(R"({"aud":[]})")), "wrong audience");
  EXPECT_EQ(check(v, hs256_token(R"({"aud":["odin-ws",7]})")), "invalid aud claim");
  EXPECT_EQ(check(v, hs256_token(R"({"aud":[["odin-ws"]]})")), "invalid aud claim");
  // Not configured: not checked.
  EXPECT_EQ(check(hs256_verifier(), hs256_token(R"({"aud":["api"]})")), "ok");
}

TEST_F(JwtVerify, OrderOfClaimChecks) {
  // Time first, then issuer, then audience, then channels.
  const JwtVerifier v = hs256_verifier(make_options("odin-ws", "auth", 0));
  const std::string all_wrong = R"({"exp":1,"iss":"x","aud":"y","channels":"z"})";
  EXPECT_EQ(check(v, hs256_token(all_wrong)), "token expired");
  EXPECT_EQ(check(v, hs256_token(R"({"iss":"x","aud":"y","channels":"z"})")), "wrong issuer");
  EXPECT_EQ(check(v, hs256_token(R"({"iss":"auth","aud":"y","channels":"z"})")), "wrong audience");
  EXPECT_EQ(check(v, hs256_token(R"({"iss":"auth","aud":"odin-ws","channels":"z"})")),
            "invalid channels claim: not an array");
}

// ---- channels claim --------------------------------------------------------------------------

TEST_F(JwtVerify, ChannelsAbsentAllowsNothing) {
  const TokenClaims c = claims(hs256_verifier(), hs256_token(R"({"sub":"alice"})"));
  EXPECT_EQ(c.channels.size(), 0u);
  EXPECT_FALSE(c.channels.allows_everything());
  EXPECT_FALSE(c.channels.allows("prices.BTC"));
  EXPECT_FALSE(c.channels.allows("a"));
  const TokenClaims empty = claims(hs256_verifier(), hs256_token(R"({"channels":[]})"));
  EXPECT_EQ(empty.channels.size(), 0u);
  EXPECT_FALSE(empty.channels.allows("a"));
}

TEST_F(JwtVerify, ChannelsWithWildcards) {
  const TokenClaims c = claims(
      hs256_verifier(), hs256_token(R"({"channels":["prices.*","news.>","BTCUSD","a.*.c"]})"));
  EXPECT_EQ(c.channels.size(), 4u);
  EXPECT_FALSE(c.channels.allows_everything());
  EXPECT_TRUE(c.channels.allows("prices.BTC"));
  EXPECT_FALSE(c.channels.allows("prices.BTC.x"));
  EXPECT_FALSE(c.channels.allows("prices"));
  EXPECT_TRUE(c.channels.allows("news.eu"));
  EXPECT_TRUE(c.channels.allows("news.eu.fr"));
  EXPECT_FALSE(c.channels.allows("news"));
  EXPECT_TRUE(c.channels.allows("BTCUSD"));
  EXPECT_FALSE(c.channels.allows("BTCUSDT"));
  EXPECT_TRUE(c.channels.allows("a.b.c"));
  EXPECT_FALSE(c.channels.allows("a.b.d"));

  const TokenClaims all = claims(hs256_verifier(), hs256_token(R"({"channels":[">"]})"));
  EXPECT_TRUE(all.channels.allows_everything());
  EXPECT_TRUE(all.channels.allows("anything.at:all"));
}

TEST_F(JwtVerify, InvalidChannelsClaim) {
  const JwtVerifier v = hs256_verifier();
  EXPECT_EQ(check(v, hs256_token(R"({"channels":["prices.>","a..b"]})")),
            R"(invalid channels claim: pattern 1 "a..b": empty token)");
  EXPECT_EQ(check(v, hs256_token(R"({"channels":["prices.>.x"]})")),
            R"(invalid channels claim: pattern 0 "prices.>.x": '>' must be the last token)");
  EXPECT_EQ(check(v, hs256_token(R"({"channels":["a b"]})")),
            "invalid channels claim: pattern 0: " + std::string(kBadPatternChar));
  EXPECT_EQ(check(v, hs256_token(R"({"channels":[""]})")),
            "invalid channels claim: pattern 0: empty");
  EXPECT_EQ(check(v, hs256_token(R"({"channels":["news",7]})")),
            "invalid channels claim: pattern 1 is not a string");
  EXPECT_EQ(check(v, hs256_token(R"({"channels":"prices.>"})")),
            "invalid channels claim: not an array");
  EXPECT_EQ(check(v, hs256_token(R"({"channels":null})")), "invalid channels claim: not an array");
  EXPECT_EQ(check(v, hs256_token(R"({"channels":{"prices.>":true}})")),
            "invalid channels claim: not an array");
}

// ---- verifier lifetime and OpenSSL hygiene ---------------------------------------------------

TEST_F(JwtVerify, MovedVerifierKeepsWorking) {
  JwtVerifier a = hs256_verifier();
  JwtVerifier b = std::move(a);
  EXPECT_EQ(check(b, hs256_token("{}")), "ok");
  JwtVerifier c = rs256_verifier();
  c = std::move(b);
  EXPECT_EQ(c.algorithm(), JwtAlgorithm::kHS256);
  EXPECT_EQ(check(c, hs256_token("{}")), "ok");
  // A moved-from verifier holds no key and accepts nothing.
  EXPECT_EQ(check(a, hs256_token("{}")), "bad signature");  // NOLINT(bugprone-use-after-move)
}

TEST_F(JwtVerify, LeavesNoOpenSslErrorsBehind) {
  ERR_clear_error();
  EXPECT_EQ(check(rs256_verifier(), rs256_token("{}", header_for("RS256"), keys().other_rsa.get())),
            "bad signature");
  EXPECT_EQ(check(es256_verifier(), es256_token("{}", header_for("ES256"), keys().other_ec.get())),
            "bad signature");
  EXPECT_EQ(refusal(JwtVerifier::from_public_key_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n")),
            "no public key in pem (expected -----BEGIN PUBLIC KEY-----)");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

// ---- making verifiers ------------------------------------------------------------------------

TEST(JwtKeys, SecretLength) {
  EXPECT_EQ(refusal(JwtVerifier::from_secret("")), "hs256 secret is empty");
  EXPECT_EQ(refusal(JwtVerifier::from_secret(std::string(31, 's'))),
            "hs256 secret has 31 bytes; at least 32 are required (RFC 7518 3.2)");
  EXPECT_EQ(refusal(JwtVerifier::from_secret("secret")),
            "hs256 secret has 6 bytes; at least 32 are required (RFC 7518 3.2)");
  EXPECT_EQ(refusal(JwtVerifier::from_secret(std::string(32, 's'))), "accepted");
  // Raw bytes, NULs included.
  EXPECT_EQ(refusal(JwtVerifier::from_secret(std::string(32, '\0'))), "accepted");
}

TEST(JwtKeys, SecretThatIsAPemKeyIsRefused) {
  EXPECT_EQ(refusal(JwtVerifier::from_secret(keys().rsa_pem)),
            "hs256 secret is a pem block: a key that may be public is no secret (give a public "
            "key to from_public_key_pem for RS256/ES256)");
}

TEST(JwtKeys, NegativeLeewayIsRefused) {
  EXPECT_EQ(refusal(JwtVerifier::from_secret(kSecret, make_options("", "", -1))),
            "leeway must not be negative");
  EXPECT_EQ(refusal(JwtVerifier::from_public_key_pem(keys().rsa_pem, make_options("", "", -1))),
            "leeway must not be negative");
}

TEST(JwtKeys, OptionsAreKept) {
  const JwtVerifier v =
      must(JwtVerifier::from_public_key_pem(keys().ec_pem, make_options("odin-ws", "auth", 5)));
  EXPECT_EQ(v.options().audience, "odin-ws");
  EXPECT_EQ(v.options().issuer, "auth");
  EXPECT_EQ(v.options().leeway_seconds, 5);
}

TEST(JwtKeys, GarbagePemIsRefused) {
  const std::string expected = "no public key in pem (expected -----BEGIN PUBLIC KEY-----)";
  EXPECT_EQ(refusal(JwtVerifier::from_public_key_pem("")), expected);
  EXPECT_EQ(refusal(JwtVerifier::from_public_key_pem("not a key at all")), expected);
  const std::string pem = keys().rsa_pem;
  EXPECT_EQ(refusal(JwtVerifier::from_public_key_pem(pem.substr(0, pem.size() / 2))), expected);
  std::string corrupted = pem;
  corrupted[40] = corrupted[40] == 'A' ? 'B' : 'A';  // inside the base64 body
  EXPECT_EQ(refusal(JwtVerifier::from_public_key_pem(corrupted)), expected);
  // A private key is not what is asked for, even though the public key is in it.
  EXPECT_EQ(refusal(JwtVerifier::from_public_key_pem(private_pem(keys().ec.get()))), expected);
}

TEST(JwtKeys, OtherCurvesAreRefused) {
  const PkeyPtr p384 = ec_key("P-384");
  ASSERT_TRUE(p384);
  EXPECT_EQ(refusal(JwtVerifier::from_public_key_pem(public_pem(p384.get()))),
            "ec key on curve secp384r1 is not supported; ES256 needs P-256 (prime256v1)");
  const PkeyPtr k256 = ec_key("secp256k1");
  ASSERT_TRUE(k256);
  EXPECT_EQ(refusal(JwtVerifier::from_public_key_pem(public_pem(k256.get()))),
            "ec key on curve secp256k1 is not supported; ES256 needs P-256 (prime256v1)");
}

TEST(JwtKeys, OtherKeyTypesAreRefused) {
  const PkeyPtr ed25519(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  ASSERT_TRUE(ed25519);
  EXPECT_EQ(refusal(JwtVerifier::from_public_key_pem(public_pem(ed25519.get()))),
            "unsupported key type ED25519; expected RSA (RS256) or EC P-256 (ES256)");
  const PkeyPtr pss = rsa_pss_key(1024);
  ASSERT_TRUE(pss);
  EXPECT_EQ(refusal(JwtVerifier::from_public_key_pem(public_pem(pss.get()))),
            "unsupported key type RSA-PSS; expected RSA (RS256) or EC P-256 (ES256)");
}

TEST(JwtKeys, SmallRsaKeysAreRefused) {
  const PkeyPtr rsa1024 = rsa_key(1024);
  ASSERT_TRUE(rsa1024);
  EXPECT_EQ(refusal(JwtVerifier::from_public_key_pem(public_pem(rsa1024.get()))),
            "rsa key has 1024 bits; at least 2048 are required (RFC 7518 3.3)");
}

// ---- ChannelPermissions ----------------------------------------------------------------------

ChannelPermissions permissions(std::initializer_list<std::string_view> list) {
  const std::vector<std::string_view> patterns(list);
  std::string error;
  std::optional<ChannelPermissions> p = ChannelPermissions::parse(patterns, error);
  EXPECT_TRUE(p) << error;
  return p ? std::move(*p) : ChannelPermissions{};
}

std::string parse_error(std::initializer_list<std::string_view> list) {
  const std::vector<std::string_view> patterns(list);
  std::string error;
  return ChannelPermissions::parse(patterns, error) ? "valid" : error;
}

TEST(ChannelPermissions, StarMatchesExactlyOneToken) {
  const ChannelPermissions p = permissions({"prices.*"});
  EXPECT_TRUE(p.allows("prices.BTC"));
  EXPECT_TRUE(p.allows("prices.ETH-USD:spot"));
  EXPECT_FALSE(p.allows("prices"));
  EXPECT_FALSE(p.allows("prices.BTC.x"));
  EXPECT_FALSE(p.allows("pricesX.BTC"));
  EXPECT_FALSE(p.allows("other.BTC"));
  EXPECT_FALSE(p.allows_everything());
}

TEST(ChannelPermissions, StarAloneMatchesSingleTokenNames) {
  const ChannelPermissions p = permissions({"*"});
  EXPECT_TRUE(p.allows("BTCUSD"));
  EXPECT_TRUE(p.allows("a:b-c_d"));
  EXPECT_FALSE(p.allows("a.b"));
  EXPECT_FALSE(p.allows_everything());
}

TEST(ChannelPermissions, TailMatchesOneOrMoreTrailingTokens) {
  const ChannelPermissions p = permissions({"prices.>"});
  EXPECT_TRUE(p.allows("prices.BTC"));
  EXPECT_TRUE(p.allows("prices.BTC.x"));
  EXPECT_TRUE(p.allows("prices.a.b.c.d.e"));
  EXPECT_FALSE(p.allows("prices"));
  EXPECT_FALSE(p.allows("pricesBTC"));
  EXPECT_FALSE(p.allows("other.prices.BTC"));
  EXPECT_FALSE(p.allows_everything());
}

TEST(ChannelPermissions, TailAloneMatchesEverything) {
  const ChannelPermissions p = permissions({">"});
  EXPECT_TRUE(p.allows_everything());
  EXPECT_TRUE(p.allows("BTCUSD"));
  EXPECT_TRUE(p.allows("a.b.c"));
  EXPECT_TRUE(p.allows("a..b"));
  EXPECT_TRUE(p.allows("."));
  EXPECT_TRUE(p.allows(std::string(128, 'x')));
  // Only valid channel names.
  EXPECT_FALSE(p.allows(""));
  EXPECT_FALSE(p.allows(std::string(129, 'x')));
  EXPECT_FALSE(p.allows("a b"));
  EXPECT_FALSE(p.allows("a*"));
  EXPECT_TRUE(permissions({"news", ">"}).allows_everything());
}

TEST(ChannelPermissions, LiteralMatchesExactly) {
  const ChannelPermissions p = permissions({"BTCUSD"});
  EXPECT_TRUE(p.allows("BTCUSD"));
  EXPECT_FALSE(p.allows("BTCUSDT"));
  EXPECT_FALSE(p.allows("BTCUSD.x"));
  EXPECT_FALSE(p.allows("x.BTCUSD"));
  EXPECT_FALSE(p.allows("btcusd"));
  EXPECT_FALSE(p.allows("BTC"));
  const ChannelPermissions dotted = permissions({"prices.BTC"});
  EXPECT_TRUE(dotted.allows("prices.BTC"));
  EXPECT_FALSE(dotted.allows("prices.ETH"));
  EXPECT_FALSE(dotted.allows("prices"));
}

TEST(ChannelPermissions, WildcardsInTheMiddle) {
  const ChannelPermissions p = permissions({"a.*.c", "x.*.>"});
  EXPECT_TRUE(p.allows("a.b.c"));
  EXPECT_FALSE(p.allows("a.b.d"));
  EXPECT_FALSE(p.allows("a.c"));
  EXPECT_FALSE(p.allows("a.b.c.d"));
  EXPECT_TRUE(p.allows("x.y.z"));
  EXPECT_TRUE(p.allows("x.y.z.w"));
  EXPECT_FALSE(p.allows("x.y"));
  const ChannelPermissions stars = permissions({"*.*"});
  EXPECT_TRUE(stars.allows("a.b"));
  EXPECT_FALSE(stars.allows("a"));
  EXPECT_FALSE(stars.allows("a.b.c"));
}

TEST(ChannelPermissions, WildcardCharactersInsideATokenAreLiteral) {
  const ChannelPermissions p = permissions({"pri*", "a>", "x.*y.z", "q.>r"});
  EXPECT_EQ(p.size(), 4u);
  EXPECT_FALSE(p.allows_everything());
  for (std::string_view channel : {"pri*", "prices", "pri", "priX", "a>", "a", "ab", "x.*y.z",
                                   "x.y.z", "x.ay.z", "q.>r", "q.r", "q.a.r"}) {
    EXPECT_FALSE(p.allows(channel)) << channel;
  }
}

// Channel names may have empty tokens; a wildcard matches an empty token like any other.
TEST(ChannelPermissions, EmptyTokensInChannelNames) {
  EXPECT_TRUE(permissions({"a.*.b"}).allows("a..b"));
  EXPECT_TRUE(permissions({"prices.*"}).allows("prices."));
  EXPECT_TRUE(permissions({"prices.>"}).allows("prices."));
  EXPECT_TRUE(permissions({"*"}).allows(":"));
  EXPECT_FALSE(permissions({"*"}).allows("."));
  EXPECT_TRUE(permissions({"*.*"}).allows("."));
  EXPECT_FALSE(permissions({"prices"}).allows("prices."));
}

TEST(ChannelPermissions, AnyPatternMayMatch) {
  const ChannelPermissions p = permissions({"news", "prices.*", "news", "alerts.>"});
  EXPECT_EQ(p.size(), 4u);  // duplicates kept
  EXPECT_TRUE(p.allows("news"));
  EXPECT_TRUE(p.allows("prices.BTC"));
  EXPECT_TRUE(p.allows("alerts.x.y"));
  EXPECT_FALSE(p.allows("weather"));
}

TEST(ChannelPermissions, NoPatternsAllowNothing) {
  const ChannelPermissions p = permissions({});
  EXPECT_EQ(p.size(), 0u);
  EXPECT_FALSE(p.allows_everything());
  EXPECT_FALSE(p.allows("a"));
  const ChannelPermissions d;
  EXPECT_EQ(d.size(), 0u);
  EXPECT_FALSE(d.allows("a"));
}

TEST(ChannelPermissions, InvalidPatterns) {
  struct Case {
    std::string pattern;
    std::string error;
  };
  const std::string bad_char = "pattern 0: " + std::string(kBadPatternChar);
  const Case cases[] = {
      {"", "pattern 0: empty"},
      {"a..b", R"(pattern 0 "a..b": empty token)"},
      {".a", R"(pattern 0 ".a": empty token)"},
      {"a.", R"(pattern 0 "a.": empty token)"},
      {".", R"(pattern 0 ".": empty token)"},
      {">.a", R"(pattern 0 ">.a": '>' must be the last token)"},
      {"a.>.b", R"(pattern 0 "a.>.b": '>' must be the last token)"},
      {"a.>.>", R"(pattern 0 "a.>.>": '>' must be the last token)"},
      {"a.>.", R"(pattern 0 "a.>.": '>' must be the last token)"},
      {"a b", bad_char},
      {"a/b", bad_char},
      {"prices.\n", bad_char},
      {"caf\xc3\xa9", bad_char},
      {std::string("a\0b", 3), bad_char},
      {"\"quoted\"", bad_char},
      {std::string(129, 'x'), "pattern 0: longer than 128 characters"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(parse_error({c.pattern}), c.error) << c.pattern;
  }
  EXPECT_EQ(parse_error({std::string(128, 'x')}), "valid");
  EXPECT_EQ(parse_error({std::string(126, 'x') + ".>"}), "valid");
}

TEST(ChannelPermissions, ErrorNamesTheFirstBadPattern) {
  EXPECT_EQ(parse_error({"ok", "fine.*", "bad..x", "also bad"}),
            R"(pattern 2 "bad..x": empty token)");
  EXPECT_EQ(parse_error({"ok", "also bad", "bad..x"}),
            "pattern 1: " + std::string(kBadPatternChar));
}

}  // namespace
}  // namespace odin::auth
