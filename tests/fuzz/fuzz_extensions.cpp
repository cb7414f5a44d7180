// Fuzzes permessage-deflate negotiation (ws::negotiate_deflate, ws::write_deflate_response) with
// the fuzzer's bytes as the Sec-WebSocket-Extensions lines of an upgrade request.
//
// Input: the bytes split at '\n' into header lines (so a line never holds '\n'; every other byte,
// CR and NUL included, reaches the parser).
// Invariants beyond "no crash, no leak, no UB":
//  - the agreement's window is in 8..15, and 15 unless the client offered one; a refusal is the
//    default agreement, all fields;
//  - an agreement's response value fits kDeflateResponseCapacity, starts with the extension name,
//    carries client_no_context_takeover, and read back as an offer gives the same agreement;
//  - the lines joined into one with ", " give the same agreement (RFC 6455 9.1: several lines are
//    one list), when the joined line is within the byte bound;
//  - an accepted offer stays accepted when another permessage-deflate offer follows it on a line
//    of its own (the first acceptable offer wins), within the line and offer bounds.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ws/extensions.hpp"

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) violated(what);
}

using odin::ws::DeflateAgreement;

void check_agreement(const DeflateAgreement& a) {
  check(a.server_max_window_bits >= 8 && a.server_max_window_bits <= 15, "window bits in 8..15");
  check(a.server_max_window_bits_offered || a.server_max_window_bits == 15,
        "window bits below 15 only when offered");
  if (!a.enabled) check(a == DeflateAgreement{}, "a refusal is the default agreement");
}

void check_response(const DeflateAgreement& a) {
  std::array<char, odin::ws::kDeflateResponseCapacity> buffer;
  const std::string_view response = odin::ws::write_deflate_response(a, buffer);
  if (!a.enabled) {
    check(response.empty(), "no response value without an agreement");
    return;
  }
  check(response.data() == buffer.data() && response.size() <= buffer.size(),
        "response value inside the buffer");
  check(response.starts_with("permessage-deflate"), "response value names the extension");
  check(response.find("; client_no_context_takeover") != std::string_view::npos,
        "response value carries client_no_context_takeover");
  check(response.find("client_max_window_bits") == std::string_view::npos,
        "response value never carries client_max_window_bits");
  const std::array<std::string_view, 1> again = {response};
  check(odin::ws::negotiate_deflate(again) == a, "response value reads back as the agreement");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (true) {
    const size_t newline = input.find('\n', start);
    lines.push_back(input.substr(start, newline - start));
    if (newline == std::string_view::npos) break;
    start = newline + 1;
  }

  const DeflateAgreement agreement = odin::ws::negotiate_deflate(lines);
  check_agreement(agreement);
  check_response(agreement);

  if (lines.size() <= odin::ws::kMaxExtensionHeaderLines) {
    std::string joined;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) joined += ", ";
      joined += lines[i];
    }
    if (joined.size() <= odin::ws::kMaxExtensionHeaderBytes) {
      const std::array<std::string_view, 1> one = {joined};
      check(odin::ws::negotiate_deflate(one) == agreement, "joined lines give the same agreement");
    }
  }

  // One more line and one more offer: in bounds only when the input left room for both, which
  // the offer count does not say; a refusal there is the bound, not a change of choice.
  if (agreement.enabled && lines.size() < odin::ws::kMaxExtensionHeaderLines &&
      size + 18 <= odin::ws::kMaxExtensionHeaderBytes) {
    lines.push_back("permessage-deflate");
    const DeflateAgreement more = odin::ws::negotiate_deflate(lines);
    check(more == agreement || !more.enabled, "a later offer changes the choice");
  }
  return 0;
}
