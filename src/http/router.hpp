// HTTP routing for one complete request: the WebSocket upgrade, the operations endpoints,
// POST /publish and the static page. Responses are queued on the connection.
#pragma once

#include <string>
#include <string_view>

#include "http/request_parser.hpp"

namespace odin {

class Connection;

// Handles `request`; returns false when the connection must stop reading (it upgraded, or it
// will close after the response).
bool handle_http_request(Connection& conn, HttpRequest& request);

// Queues a complete response; `extra_headers` are full header lines ending in CRLF.
void send_http_response(Connection& conn, unsigned status, std::string_view content_type,
                        std::string_view body, bool keep_alive,
                        std::string_view extra_headers = {});
// A JSON error body: {"error":"<reason>"}.
void send_http_error(Connection& conn, unsigned status, std::string_view reason, bool keep_alive,
                     std::string_view extra_headers = {});

}  // namespace odin
