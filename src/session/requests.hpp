// Client requests (PROTOCOL.md "Client to server"): subscribe, unsubscribe, heartbeat, replay,
// resume; their replies and errors; and the welcome a new session starts with.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/message.hpp"

namespace odin::session {

class Client;
class Session;
struct MigratingConnection;

// A `replay` whose output is more than one part (kReplayPartBytes): the messages it re-sends,
// taken from the ring when it was asked (so the ring moving on meanwhile changes nothing), go out
// a part at a time, each once the previous one was written. The connection holds it while it
// runs; requests the client sent after it wait, so every reply keeps its order.
struct ReplayInProgress {
  std::vector<core::MessageRef> messages;  // seq first_seq, first_seq + 1, ...
  uint64_t first_seq = 0;
  size_t next = 0;  // the next message to send
  // For `replay_done`.
  uint64_t from = 0;
  uint64_t to = 0;
  uint64_t first_available = 0;
  std::string id_json;
};

// Sends the next part of the connection's replay in progress. True when it is done (the
// `replay_done` reply went out); false when a part is queued and the rest waits until it is
// written. Loop thread of the connection.
bool continue_replay(Client& client, ReplayInProgress& replay);

// Handles one text message from the client. Returns false when the connection was closed.
bool handle_client_request(Client& client, Session& session, std::string_view text);

// Sends `welcome` for a freshly upgraded connection.
void send_welcome(Client& client, Session& session);

// Subscribes to channels named at connect (`?channels=`), replying `subscribed`.
void subscribe_at_connect(Client& client, Session& session,
                          std::span<const std::string_view> channels);

// A connection arrived from another thread (resume migration): answer the request it carries,
// then the requests that followed it.
void continue_migrated(Client& client, MigratingConnection& moving);

}  // namespace odin::session
