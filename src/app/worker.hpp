// One event-loop thread's parts, built and wired here: the transport loop (net/), the
// subscription index (pubsub/), the WebSocket clients and their sessions (session/) and the
// fan-out's half (hub/). Members are declared in destruction order, reversed: what holds message
// references dies before the loop whose pool they point into, and the sessions before the index
// they are subscribed in.
#pragma once

#include <atomic>
#include <cstdint>

#include "hub/fanout.hpp"
#include "net/event_loop.hpp"
#include "pubsub/subscription_index.hpp"
#include "session/client_thread.hpp"

namespace odin::app {

class Worker {
 public:
  // `loop_parts.on_sweep` is filled here (the clients' and the fan-out's sweeps).
  Worker(const ops::Config& config, unsigned index, net::LoopParts loop_parts,
         session::ClientThreadParts client_parts);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  net::EventLoop& loop() { return loop_; }
  const net::EventLoop& loop() const { return loop_; }
  session::ClientThread& clients() { return clients_; }
  const session::ClientThread& clients() const { return clients_; }
  hub::ThreadFanout& fanout() { return fanout_; }
  // Channel entries this thread holds, for /stats (read from other threads).
  uint32_t channel_count() const { return channel_count_.load(std::memory_order_relaxed); }

 private:
  net::EventLoop loop_;
  pubsub::SubscriptionIndex index_;
  session::ClientThread clients_;
  hub::ThreadFanout fanout_;
  std::atomic<uint32_t> channel_count_{0};
};

}  // namespace odin::app
