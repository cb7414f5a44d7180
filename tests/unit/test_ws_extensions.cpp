// Unit tests of permessage-deflate negotiation (RFC 7692): what real clients offer, the offers the
// gateway declines and the next one it takes, malformed and oversized headers, and the response.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "ws/extensions.hpp"

namespace odin::ws {
namespace {

// What the gateway answers to these Sec-WebSocket-Extensions lines: the response value and the
// window the caller's length rule uses, or "none" (no compression, no response header).
std::string outcome(std::initializer_list<std::string_view> lines) {
  const std::vector<std::string_view> values(lines);
  const DeflateAgreement agreement = negotiate_deflate(values);
  if (!agreement.enabled) return "none";
  std::array<char, kDeflateResponseCapacity> buffer;
  std::string out(write_deflate_response(agreement, buffer));
  out += " / window ";
  out += std::to_string(agreement.server_max_window_bits);
  return out;
}

constexpr std::string_view kPlain = "permessage-deflate; client_no_context_takeover / window 15";

TEST(DeflateNegotiation, WhatClientsSend) {
  // Chromium, and npm ws's default client (perMessageDeflate: true).
  EXPECT_EQ(outcome({"permessage-deflate; client_max_window_bits"}), kPlain);
  // Firefox.
  EXPECT_EQ(outcome({"permessage-deflate"}), kPlain);
  // python3-websockets 10.4's default client (enable_client_permessage_deflate) sends the same
  // as Chromium; server_max_window_bits=12 + client_max_window_bits=12 is its default *server*
  // configuration, which a client configured the same way offers:
  EXPECT_EQ(
      outcome({"permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"}),
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=12 / window 12");
  EXPECT_EQ(outcome({"permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                     "server_max_window_bits=10; client_max_window_bits=9"}),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10 / window 10");
  EXPECT_EQ(
      outcome({"permessage-deflate; server_no_context_takeover"}),
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover / window 15");
  EXPECT_EQ(outcome({"permessage-deflate; client_no_context_takeover"}), kPlain);
  // Offered at 15, the parameter is still repeated: 7.1.2.1 accepts only that way.
  EXPECT_EQ(
      outcome({"permessage-deflate; server_max_window_bits=15"}),
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=15 / window 15");
  EXPECT_EQ(outcome({"permessage-deflate; server_max_window_bits=8"}),
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=8 / window 8");
}

TEST(DeflateNegotiation, AgreementFields) {
  const std::array<std::string_view, 1> offer = {
      "permessage-deflate; server_max_window_bits=11; server_no_context_takeover"};
  const DeflateAgreement a = negotiate_deflate(offer);
  EXPECT_TRUE(a.enabled);
  EXPECT_EQ(a.server_max_window_bits, 11);
  EXPECT_TRUE(a.server_max_window_bits_offered);
  EXPECT_TRUE(a.server_no_context_takeover);

  const std::array<std::string_view, 1> chromium = {"permessage-deflate; client_max_window_bits"};
  const DeflateAgreement b = negotiate_deflate(chromium);
  EXPECT_TRUE(b.enabled);
  EXPECT_EQ(b.server_max_window_bits, 15);
  EXPECT_FALSE(b.server_max_window_bits_offered);
  EXPECT_FALSE(b.server_no_context_takeover);

  const DeflateAgreement none = negotiate_deflate({});
  EXPECT_FALSE(none.enabled);
  EXPECT_EQ(none.server_max_window_bits, 15);
  EXPECT_FALSE(none.server_max_window_bits_offered);
  EXPECT_FALSE(none.server_no_context_takeover);
}

TEST(DeflateNegotiation, TheFirstAcceptableOfferWins) {
  EXPECT_EQ(outcome({"permessage-deflate; server_max_window_bits=7, "
                     "permessage-deflate; server_max_window_bits=9"}),
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=9 / window 9");
  EXPECT_EQ(outcome({"permessage-deflate; foo, permessage-deflate; client_max_window_bits"}),
            kPlain);
  EXPECT_EQ(
      outcome({"permessage-deflate; server_max_window_bits=10, permessage-deflate"}),
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=10 / window 10");
  EXPECT_EQ(outcome({"permessage-deflate, permessage-deflate; server_max_window_bits=10"}), kPlain);
  // A declined offer after the chosen one changes nothing.
  EXPECT_EQ(outcome({"permessage-deflate, permessage-deflate; server_max_window_bits=99"}), kPlain);
  EXPECT_EQ(
      outcome({"permessage-deflate; x, permessage-deflate; server_max_window_bits=16, "
               "permessage-deflate; server_no_context_takeover"}),
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover / window 15");
  EXPECT_EQ(outcome({"permessage-deflate; x, permessage-deflate; server_max_window_bits=16"}),
            "none");
}

TEST(DeflateNegotiation, ARepeatedParameterDeclinesTheOffer) {
  EXPECT_EQ(outcome({"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}),
            "none");
  EXPECT_EQ(outcome({"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}),
            "none");
  EXPECT_EQ(outcome({"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"}),
            "none");
  EXPECT_EQ(outcome({"permessage-deflate; client_max_window_bits; client_max_window_bits=10"}),
            "none");
  EXPECT_EQ(outcome({"permessage-deflate; client_max_window_bits; client_max_window_bits"}),
            "none");
  EXPECT_EQ(outcome({"permessage-deflate; server_max_window_bits=9; server_max_window_bits=9, "
                     "permessage-deflate"}),
            kPlain);
}

TEST(DeflateNegotiation, AnUnknownParameterDeclinesTheOffer) {
  EXPECT_EQ(outcome({"permessage-deflate; x"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate; x=1"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate; client_max_window"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate; no_context_takeover"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate; client_max_window_bits; mux"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate; x, permessage-deflate"}), kPlain);
}

TEST(DeflateNegotiation, WindowBitsValues) {
  const auto server_bits = [](std::string_view value) {
    const std::string offer = "permessage-deflate; server_max_window_bits=" + std::string(value);
    return outcome({offer});
  };
  const auto client_bits = [](std::string_view value) {
    const std::string offer = "permessage-deflate; client_max_window_bits=" + std::string(value);
    return outcome({offer});
  };
  EXPECT_EQ(server_bits("9"),
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=9 / window 9");
  EXPECT_EQ(
      server_bits("13"),
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=13 / window 13");
  // Quoted strings are allowed (RFC 6455 9.1), escapes included, as long as the value unescaped
  // is the same decimal integer.
  EXPECT_EQ(
      server_bits("\"10\""),
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=10 / window 10");
  EXPECT_EQ(server_bits("\"8\""),
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=8 / window 8");
  EXPECT_EQ(
      server_bits("\"\\1\\4\""),
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=14 / window 14");
  // Out of 8..15, leading zeros, signs, non-digits: the offer is declined.
  for (std::string_view bad :
       {"7",      "16",    "0",   "1",   "08",  "010", "015", "150",   "99999999999999999999",
        "+9",     "-9",    "9.0", "1e1", "10a", "a10", "abc", "\"7\"", "\"16\"",
        "\"08\"", "\"1a\""}) {
    EXPECT_EQ(server_bits(bad), "none") << bad;
    EXPECT_EQ(client_bits(bad), "none") << bad;
  }
  // server_max_window_bits needs a value in an offer, client_max_window_bits need not have one.
  EXPECT_EQ(outcome({"permessage-deflate; server_max_window_bits"}), "none");
  EXPECT_EQ(client_bits("8"), kPlain);
  EXPECT_EQ(client_bits("15"), kPlain);
  EXPECT_EQ(client_bits("\"10\""), kPlain);
  // The no_context_takeover parameters take no value.
  EXPECT_EQ(outcome({"permessage-deflate; server_no_context_takeover=1"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate; client_no_context_takeover=true"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate; client_no_context_takeover=\"x\""}), "none");
  // An empty or non-token value is malformed, not just invalid: nothing is negotiated, even with
  // a good offer after it.
  EXPECT_EQ(server_bits("\"\""), "none");
  EXPECT_EQ(server_bits(""), "none");
  EXPECT_EQ(server_bits("\"1 0\""), "none");
  EXPECT_EQ(outcome({"permessage-deflate; server_max_window_bits=\"\", permessage-deflate"}),
            "none");
  EXPECT_EQ(outcome({"permessage-deflate; server_max_window_bits=, permessage-deflate"}), "none");
}

TEST(DeflateNegotiation, OtherExtensionsAreSkipped) {
  // Old Safari offered only this; it is not permessage-deflate.
  EXPECT_EQ(outcome({"x-webkit-deflate-frame"}), "none");
  EXPECT_EQ(outcome({"x-webkit-deflate-frame; no_context_takeover"}), "none");
  EXPECT_EQ(outcome({"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits"}),
            kPlain);
  // Another extension's parameters are its own business, as long as they parse.
  EXPECT_EQ(
      outcome({"foo; bar=baz; q=\"x\"; server_max_window_bits=99; bar=again, "
               "permessage-deflate; server_max_window_bits=11"}),
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=11 / window 11");
  EXPECT_EQ(outcome({"permessage-deflate-x, deflate, permessage"}), "none");
}

TEST(DeflateNegotiation, SeveralHeaderLinesAreOneList) {
  EXPECT_EQ(
      outcome({"x-webkit-deflate-frame", "permessage-deflate; server_max_window_bits=11"}),
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=11 / window 11");
  EXPECT_EQ(outcome({"permessage-deflate; server_max_window_bits=7", "permessage-deflate"}),
            kPlain);
  EXPECT_EQ(outcome({"permessage-deflate; server_max_window_bits=9", "permessage-deflate"}),
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=9 / window 9");
  EXPECT_EQ(outcome({"", "permessage-deflate"}), kPlain);
  EXPECT_EQ(outcome({"foo", "", "bar, permessage-deflate"}), kPlain);
  // A malformed line anywhere means no compression, before or after the chosen offer.
  EXPECT_EQ(outcome({"permessage-deflate", "garbage;;"}), "none");
  EXPECT_EQ(outcome({"garbage;;", "permessage-deflate"}), "none");
  // An offer ends with its line.
  EXPECT_EQ(outcome({"permessage-deflate;", "server_max_window_bits=9"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate; server_max_window_bits=\"1", "0\""}), "none");
}

TEST(DeflateNegotiation, NamesAreCaseSensitive) {
  // See extensions.cpp: clients compare these names exactly, so a differently cased offer is
  // declined rather than answered in a case the client did not use.
  EXPECT_EQ(outcome({"Permessage-Deflate"}), "none");
  EXPECT_EQ(outcome({"PERMESSAGE-DEFLATE; client_max_window_bits"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate; SERVER_MAX_WINDOW_BITS=10"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate; Client_Max_Window_Bits"}), "none");
  EXPECT_EQ(outcome({"PERMESSAGE-DEFLATE, permessage-deflate"}), kPlain);
}

TEST(DeflateNegotiation, Whitespace) {
  EXPECT_EQ(outcome({"  permessage-deflate  ;  client_max_window_bits  "}), kPlain);
  EXPECT_EQ(
      outcome({"permessage-deflate;server_max_window_bits=10"}),
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=10 / window 10");
  EXPECT_EQ(
      outcome({"permessage-deflate ; server_max_window_bits = 10 "}),
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=10 / window 10");
  EXPECT_EQ(
      outcome({"\tpermessage-deflate\t;\tserver_max_window_bits\t=\t\"10\"\t"}),
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=10 / window 10");
  EXPECT_EQ(outcome({"x , permessage-deflate ,, "}), kPlain);
  EXPECT_EQ(outcome({" , ,permessage-deflate,"}), kPlain);
  // Not inside a name or a value; CR, LF and other control characters are not whitespace here.
  EXPECT_EQ(outcome({"permessage -deflate"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate; server_max_window_bits=1 0"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate; server_max _window_bits=10"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate\r\n"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate\n"}), "none");
  EXPECT_EQ(outcome({"\vpermessage-deflate"}), "none");
}

TEST(DeflateNegotiation, MalformedHeadersMeanNoCompression) {
  using namespace std::string_view_literals;
  for (std::string_view bad : {";"sv,
                               "="sv,
                               "\""sv,
                               "permessage-deflate;"sv,
                               "permessage-deflate; =10"sv,
                               "permessage-deflate; server_max_window_bits==10"sv,
                               "permessage-deflate; server_max_window_bits=\"10"sv,
                               "permessage-deflate; server_max_window_bits=\"10\\"sv,
                               "permessage-deflate; server_max_window_bits=\"10\"x"sv,
                               "permessage-deflate; server_max_window_bits=10=11"sv,
                               "permessage-deflate;; client_max_window_bits"sv,
                               "permessage-deflate x"sv,
                               "\"permessage-deflate\""sv,
                               "permessage-deflate\0"sv,
                               "permessage-deflate; \xc3\xa9"sv,
                               "permessage-deflate, x; y=\"a b\""sv,
                               "permessage-deflate, x; y=\"a,b\""sv,
                               "permessage-deflate, (comment)"sv,
                               "permessage-deflate, x=1"sv,
                               "permessage-deflate; client_max_window_bits, ;"sv}) {
    EXPECT_EQ(outcome({bad}), "none") << testing::PrintToString(std::string(bad));
  }
}

TEST(DeflateNegotiation, EmptyHeaders) {
  EXPECT_EQ(outcome({}), "none");
  EXPECT_EQ(outcome({""}), "none");
  EXPECT_EQ(outcome({" ", "\t"}), "none");
  EXPECT_EQ(outcome({","}), "none");
  EXPECT_EQ(outcome({" , ,, "}), "none");
}

TEST(DeflateNegotiation, Bounds) {
  // kMaxExtensionHeaderBytes across all lines: at the bound accepted, past it nothing.
  const std::string offer = "permessage-deflate";
  const std::string at_bound = offer + std::string(kMaxExtensionHeaderBytes - offer.size(), ' ');
  EXPECT_EQ(outcome({at_bound}), kPlain);
  EXPECT_EQ(outcome({at_bound + " "}), "none");
  EXPECT_EQ(outcome({at_bound, " "}), "none");
  EXPECT_EQ(outcome({" ", at_bound}), "none");
  const std::string first_half =
      offer + std::string(kMaxExtensionHeaderBytes / 2 - offer.size(), ' ');
  const std::string second_half(kMaxExtensionHeaderBytes / 2, ' ');
  EXPECT_EQ(outcome({first_half, second_half}), kPlain);
  EXPECT_EQ(outcome({first_half, second_half + " "}), "none");
  EXPECT_EQ(outcome({std::string(kMaxExtensionHeaderBytes - offer.size(), ',') + offer}), kPlain);

  // kMaxExtensionHeaderLines.
  std::vector<std::string_view> lines(kMaxExtensionHeaderLines - 1, "");
  lines.push_back("permessage-deflate");
  EXPECT_TRUE(negotiate_deflate(lines).enabled);
  lines.insert(lines.begin(), "");
  EXPECT_FALSE(negotiate_deflate(lines).enabled);

  // kMaxExtensionOffers, counted across lines; empty list elements are not offers.
  std::string others;
  for (size_t i = 0; i + 1 < kMaxExtensionOffers; ++i)
    others += "x, ";
  EXPECT_EQ(outcome({others + "permessage-deflate"}), kPlain);
  EXPECT_EQ(outcome({others + "x, permessage-deflate"}), "none");
  EXPECT_EQ(outcome({others, "permessage-deflate"}), kPlain);
  EXPECT_EQ(outcome({others + "x", "permessage-deflate"}), "none");
  EXPECT_EQ(outcome({"permessage-deflate, " + others + "x"}), "none");  // past it, even after one
  EXPECT_EQ(outcome({std::string(100, ',') + "permessage-deflate"}), kPlain);

  // kMaxExtensionParams per offer.
  std::string params = "x";
  for (size_t i = 0; i < kMaxExtensionParams; ++i)
    params += "; a";
  EXPECT_EQ(outcome({params + ", permessage-deflate"}), kPlain);
  EXPECT_EQ(outcome({params + "; a, permessage-deflate"}), "none");
}

TEST(DeflateNegotiation, ResponseValues) {
  std::array<char, kDeflateResponseCapacity> buffer;
  EXPECT_EQ(write_deflate_response(DeflateAgreement{}, buffer), "");
  EXPECT_EQ(write_deflate_response({.enabled = true}, buffer),
            "permessage-deflate; client_no_context_takeover");
  EXPECT_EQ(write_deflate_response({.enabled = true, .server_no_context_takeover = true}, buffer),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  const std::string_view full = write_deflate_response({.enabled = true,
                                                        .server_max_window_bits = 10,
                                                        .server_max_window_bits_offered = true,
                                                        .server_no_context_takeover = true},
                                                       buffer);
  EXPECT_EQ(full,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10");
  EXPECT_EQ(full.data(), buffer.data());
  // The capacity is the longest value, whatever the window field holds.
  EXPECT_EQ(kDeflateResponseCapacity, 102u);
  const std::string_view longest = write_deflate_response({.enabled = true,
                                                           .server_max_window_bits = 255,
                                                           .server_max_window_bits_offered = true,
                                                           .server_no_context_takeover = true},
                                                          buffer);
  EXPECT_EQ(longest.size(), kDeflateResponseCapacity);
  EXPECT_EQ(longest,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=255");
}

TEST(DeflateNegotiation, TheResponseReadsBackAsTheSameAgreement) {
  // Every agreement negotiate_deflate can return, written and read back as an offer.
  for (int bits = 8; bits <= 15; ++bits) {
    for (const bool offered : {false, true}) {
      for (const bool no_context : {false, true}) {
        if (!offered && bits != 15) continue;
        const DeflateAgreement agreement{.enabled = true,
                                         .server_max_window_bits = static_cast<uint8_t>(bits),
                                         .server_max_window_bits_offered = offered,
                                         .server_no_context_takeover = no_context};
        std::array<char, kDeflateResponseCapacity> buffer;
        const std::array<std::string_view, 1> response = {
            write_deflate_response(agreement, buffer)};
        EXPECT_EQ(negotiate_deflate(response), agreement) << response[0];
      }
    }
  }
}

}  // namespace
}  // namespace odin::ws
