// WS_ALLOWED_ORIGINS: which web pages may open a WebSocket to us. Browsers send the page's origin
// with every upgrade and let any page connect anywhere, so without this check another site's page
// could use a visitor's cookies or network position against the gateway (cross-site WebSocket
// hijacking). Non-browser clients send no Origin and are not affected.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace odin::guard {

// `allowed` holds lower-case entries as config.cpp validated them: "*", "scheme://host[:port]",
// or "scheme://*.domain[:port]" (any subdomain, not the domain itself). An empty list allows all.
bool origin_allowed(std::span<const std::string> allowed, std::string_view origin);

}  // namespace odin::guard
