// The pure reading of a parsed request that the router does before acting on it: the path, a
// query parameter, the `?channels=` list and the WebSocket upgrade headers. Kept apart from
// router.cpp so they can be tested and fuzzed without a connection.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "core/unique_channels.hpp"
#include "http/request_parser.hpp"
#include "ws/handshake.hpp"

namespace odin::http {

// The target without its query string.
std::string_view path_of(std::string_view target);

// Value of `key` in the target's query string (raw; channel names need no decoding beyond
// %2C for the comma separator, handled by split_channels splitting on both). Empty when absent.
std::string_view query_param(std::string_view target, std::string_view key);

// Splits a `?channels=` value on ',' and '%2C' / '%2c' into `out` (views into `list`),
// duplicates removed, order kept, in time linear in the list's length. False when a name is not
// a valid channel name: an empty name between two separators counts, while an empty list or a
// trailing separator is fine. Stops reading once `out` holds cap + 1 names, so the caller's
// out.size() > cap check refuses the list without it being read to the end.
bool split_channels(std::string_view list, std::vector<std::string_view>& out,
                    size_t cap = core::kNoChannelCap);

// The headers ws::check_upgrade looks at (views into `request`).
ws::UpgradeRequest upgrade_request_of(const HttpRequest& request);
// The values of the request's Sec-WebSocket-Extensions lines, in order, into `out`; returns how
// many there were, up to out.size() (a caller that needs to know there were more passes one
// slot more than it accepts).
size_t extension_header_values(const HttpRequest& request, std::span<std::string_view> out);

}  // namespace odin::http
