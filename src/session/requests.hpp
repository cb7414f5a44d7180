// Client requests (PROTOCOL.md "Client to server"): subscribe, unsubscribe, heartbeat, replay,
// resume; their replies and errors; and the welcome a new session starts with.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace odin {

class Connection;
class Session;
struct MigratingConnection;

// Handles one text message from the client. Returns false when the connection was closed.
bool handle_client_request(Connection& conn, Session& session, std::string_view text);

// Sends `welcome` for a freshly upgraded connection.
void send_welcome(Connection& conn, Session& session);

// Subscribes to channels named at connect (`?channels=`), replying `subscribed`.
void subscribe_at_connect(Connection& conn, Session& session,
                          std::span<const std::string_view> channels);

// A connection arrived from another thread (resume migration): answer the request it carries,
// then the requests that followed it.
void continue_migrated(Connection& conn, MigratingConnection& moving);

}  // namespace odin
