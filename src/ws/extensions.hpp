// permessage-deflate negotiation (RFC 7692), the server side: which offer of a client's
// Sec-WebSocket-Extensions headers (RFC 6455 9.1) the gateway accepts, and the response value that
// says so. Pure: no compression, no I/O; the caller reads the header lines and sends the value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace odin::ws {

// The gateway deflates each message once for all its recipients and keeps no context between
// messages, and it inflates a client's messages with a fresh 15-bit window each time, so an
// agreement only carries what that needs: whether to compress at all, and the largest window the
// client can inflate with (a message is sent compressed only when its uncompressed length is at
// most 2^server_max_window_bits, so that every back-reference fits in that window).
struct DeflateAgreement {
  bool enabled = false;
  uint8_t server_max_window_bits = 15;  // 8..15; 15 unless the client asked for less
  // The client offered server_max_window_bits: RFC 7692 7.1.2.1 accepts such an offer only by
  // repeating the parameter in the response, so the response carries it (even when it is 15).
  bool server_max_window_bits_offered = false;
  // The client offered server_no_context_takeover: echoed only then, since some clients refuse a
  // response with it unasked; the gateway keeps no context in either case.
  bool server_no_context_takeover = false;

  bool operator==(const DeflateAgreement&) const = default;
};

// Bounds on what negotiate_deflate reads: real clients send one header line of at most three
// offers of at most four parameters (well under 200 bytes). Past any bound the headers are
// treated as malformed: no compression, and the upgrade goes on.
inline constexpr size_t kMaxExtensionHeaderLines = 16;
inline constexpr size_t kMaxExtensionHeaderBytes = 4096;  // all lines together
inline constexpr size_t kMaxExtensionOffers = 16;         // extensions of any name, all lines
inline constexpr size_t kMaxExtensionParams = 16;         // parameters of one offer

// `header_values`: the value of every Sec-WebSocket-Extensions line of the upgrade request, in
// order. Returns the first permessage-deflate offer the gateway can accept (RFC 7692 5: offers
// with an unknown, repeated or invalid parameter are declined and the next one is tried), or
// `enabled == false` when there is none or when any line is malformed or out of bounds. Names are
// matched exactly (case-sensitively), as the clients themselves do (see extensions.cpp).
// Linear in the input, no allocation.
DeflateAgreement negotiate_deflate(std::span<const std::string_view> header_values);

// The longest value write_deflate_response writes.
inline constexpr size_t kDeflateResponseCapacity =
    std::string_view(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        " server_max_window_bits=255")
        .size();

// Writes the Sec-WebSocket-Extensions response value for `agreement` into `out` and returns it (a
// view into `out`); empty when the agreement is not enabled (then the response has no such
// header). Always includes client_no_context_takeover (RFC 7692 7.1.1.2 lets the server add it
// unasked) and never client_max_window_bits (7.1.2.2 lets it leave that out), e.g.
// "permessage-deflate; server_no_context_takeover; client_no_context_takeover;
// server_max_window_bits=10".
std::string_view write_deflate_response(const DeflateAgreement& agreement,
                                        std::span<char, kDeflateResponseCapacity> out);

}  // namespace odin::ws
