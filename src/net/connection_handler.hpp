// What a connection's bytes mean, above the transport: the HTTP phase (http/) or a WebSocket
// client (session/). net/ calls up through this interface and never includes either. One call per
// read, flush or sweep of a connection, never one per message.
#pragma once

#include <cstdint>
#include <span>

#include "net/out_batch.hpp"

namespace odin::net {

// Every member runs on the connection's loop thread.
class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  // Bytes received (decrypted, for TLS). The handler may switch the connection to another
  // handler (Connection::set_handler) and hand it the rest.
  virtual void on_input(std::span<char> bytes) = 0;
  // Whether reading should go on now (false: paused, waiting for an answer, moving, closing).
  virtual bool wants_input() const = 0;
  // After a write of this connection's output that did not fail and did not close it: kDone
  // (all written) or kBacklogged (the rest waits for the socket; the connection waits for it).
  virtual void on_flushed(FlushResult result) = 0;
  // Periodic, while the connection is open: timeouts, pings.
  virtual void on_sweep(int64_t now_ms) = 0;
  // The socket is closing now (Connection::abort): give back what the handler holds.
  virtual void on_closed() = 0;
  // Graceful shutdown: end the conversation (a WebSocket gets 1001, HTTP its last answer).
  virtual void on_drain() = 0;
};

}  // namespace odin::net
