// One thread's WebSocket side (see client_thread.hpp): its sessions, moving clients between
// threads, parked restores, the detached-session budget.
#include "session/client_thread.hpp"

#include <poll.h>
#include <simdjson.h>
#include <unistd.h>

#include <boost/asio/post.hpp>

#include "core/clock.hpp"
#include "net/event_loop.hpp"
#include "session/requests.hpp"
#include "spdlog/spdlog.h"

namespace odin::session {

namespace {
// How soon a client that hangs up while its restore waits for the stream gives back its socket.
constexpr auto kParkedCheckPeriod = std::chrono::milliseconds(100);
}  // namespace

ClientThread::ClientThread(net::EventLoop& loop, pubsub::SubscriptionIndex& index,
                           ClientThreadParts parts)
    : loop_(loop),
      index_(index),
      parts_(std::move(parts)),
      json_parser_(std::make_unique<simdjson::dom::parser>()),
      parked_timer_(loop.io()),
      held_timer_(loop.io()) {
  sessions_.set_on_first_waiting([this] { arm_held_timer(); });
}

void ClientThread::arm_held_timer() {
  held_timer_.expires_after(kHeldTick);
  held_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) send_held();
  });
}

// Loop thread: every listed session sends what its rate and its connection allow now; those
// still waiting for a rate slot stay listed, the others are listed again by on_room_for_held.
void ClientThread::send_held() {
  const int64_t now_ns = core::steady_ns();
  net::OutBatch& out = loop_.out();
  uint64_t sent = 0;
  sessions_.for_each_waiting(
      [&](Session& session) { return session.send_held(index_, now_ns, out, sent); });
  if (sent != 0) {
    loop_.stats().messages_out.add(sent);
    loop_.flush();
  }
  if (sessions_.waiting() != 0) arm_held_timer();
}

ClientThread::~ClientThread() {
  for (auto& [id, parked] : parked_) {
    if (parked.moving->socket.fd >= 0) ::close(parked.moving->socket.fd);
  }
}

ws::MessageInflater& ClientThread::inflater() {
  if (!inflater_) inflater_ = std::make_unique<ws::MessageInflater>();
  return *inflater_;
}

const ops::Config& ClientThread::config() const {
  return loop_.config();
}

SessionId ClientThread::new_session_id() const {
  return SessionId::random(loop_.index());
}

void ClientThread::sweep(int64_t now_ms) {
  sessions_.expire(now_ms, config().resume_ttl.count(), index_);
  session_count_.store(static_cast<uint32_t>(sessions_.size()), std::memory_order_relaxed);
  detached_count_.store(static_cast<uint32_t>(sessions_.detached()), std::memory_order_relaxed);
  latest_subscriptions_.store(static_cast<uint32_t>(index_.latest_subscription_count()),
                              std::memory_order_relaxed);
  held_messages_.store(static_cast<uint32_t>(index_.held_count()), std::memory_order_relaxed);
  conflated_total_.store(index_.conflated_total(), std::memory_order_relaxed);
}

void ClientThread::hand_over(unsigned thread, MigratingConnection moving) {
  ClientThread& target = *peers_[thread];
  // The move-only payload travels in a shared_ptr because asio handlers must be copyable here.
  auto payload = std::make_shared<MigratingConnection>(std::move(moving));
  // A restore that needs the stream waits here for the broker to read it, when there is room;
  // otherwise it goes on at once with nothing read (incomplete: answered resume_failed).
  if (payload->fetch && parts_.stream_reader->reserve_stream_read(config().max_stream_reads)) {
    return park_for_fetch(target, std::move(payload));
  }
  boost::asio::post(target.loop().io(), [&target, payload] { target.adopt(std::move(*payload)); });
}

// Loop thread. The connection waits without a Connection: only its socket is watched (for a
// hang-up, every kParkedCheckPeriod), so its wait costs no CPU and a client that leaves gives back
// its socket and its connection slot at once, and the broker skips or stops its read.
void ClientThread::park_for_fetch(ClientThread& target,
                                  std::shared_ptr<MigratingConnection> payload) {
  const uint64_t id = ++parked_counter_;
  auto abandoned = std::make_shared<std::atomic<bool>>(false);
  std::unique_ptr<core::StreamFetch> fetch = std::move(payload->fetch);
  fetch->abandoned = abandoned;
  parked_.emplace(id, Parked{&target, std::move(payload), std::move(abandoned)});
  arm_parked_check();
  // The callback runs once, on the broker's reader thread (or here, when it cannot read).
  parts_.stream_reader->fetch(
      std::move(fetch), config().replay_size, [this, id](std::unique_ptr<core::StreamFetch> done) {
        std::shared_ptr<core::StreamFetch> fetched(std::move(done));
        boost::asio::post(loop_.io(), [this, id, fetched] { unpark(id, fetched); });
      });
}

// Loop thread: the read is over; the connection goes on (unless it hung up meanwhile).
void ClientThread::unpark(uint64_t id, std::shared_ptr<core::StreamFetch> fetched) {
  parts_.stream_reader->release_stream_read();
  auto it = parked_.find(id);
  if (it == parked_.end()) return;
  ClientThread& target = *it->second.target;
  std::shared_ptr<MigratingConnection> payload = std::move(it->second.moving);
  parked_.erase(it);
  payload->fetch = std::make_unique<core::StreamFetch>(std::move(*fetched));
  if (&target == this) return adopt(std::move(*payload));
  boost::asio::post(target.loop().io(), [&target, payload] { target.adopt(std::move(*payload)); });
}

void ClientThread::arm_parked_check() {
  if (parked_check_armed_ || parked_.empty()) return;
  parked_check_armed_ = true;
  parked_timer_.expires_after(kParkedCheckPeriod);
  parked_timer_.async_wait([this](const boost::system::error_code& ec) {
    parked_check_armed_ = false;
    if (ec) return;
    check_parked();
    arm_parked_check();
  });
}

// Loop thread: closes the parked connections whose client hung up (POLLRDHUP sees the FIN even
// behind unread requests).
void ClientThread::check_parked() {
  std::vector<pollfd> fds;
  std::vector<uint64_t> ids;
  fds.reserve(parked_.size());
  ids.reserve(parked_.size());
  for (const auto& [id, parked] : parked_) {
    fds.push_back(pollfd{parked.moving->socket.fd, POLLRDHUP, 0});
    ids.push_back(id);
  }
  if (::poll(fds.data(), fds.size(), 0) <= 0) return;
  for (size_t i = 0; i < fds.size(); ++i) {
    if ((fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) == 0) continue;
    auto it = parked_.find(ids[i]);
    it->second.abandoned->store(true, std::memory_order_relaxed);
    ::close(it->second.moving->socket.fd);
    end_transit(it->second.moving->fresh_session);  // resumable again, until WS_RESUME_TTL
    // Its TLS state, its place under the per-address cap and its admission ticket go with it.
    parked_.erase(it);
    parts_.stream_reader->count_abandoned_stream_read();
    on_websocket_closed();
  }
}

void ClientThread::adopt(MigratingConnection moving) {
  Client* client = nullptr;
  net::Connection* conn = loop_.adopt(std::move(moving.socket), [&](net::Connection& adopted) {
    auto owned = std::make_unique<Client>(*this, adopted, std::move(moving.ticket),
                                          std::move(moving.reader));
    client = owned.get();
    return owned;
  });
  if (!conn) {
    end_transit(moving.fresh_session);  // its ticket goes with `moving`
    return;
  }
  client->saw_request = moving.saw_request;
  client->set_token(std::move(moving.token));
  if (moving.deflate_window_bits != 0) client->enable_deflate(moving.deflate_window_bits);
  continue_migrated(*client, moving);
  // It left its thread before this one began draining (begin_drain did not see it): it is
  // answered as usual, then told to go like everyone else.
  if (loop_.draining() && !client->migrating() && client->open()) client->on_drain();
  if (!client->migrating() && conn->state() != net::Connection::State::kClosed)
    conn->resume_reading();
}

void ClientThread::discard_session_elsewhere(const SessionId& session_id) {
  const unsigned thread = session_id.thread();
  if (thread >= thread_count()) return;
  ClientThread& owner = *peers_[thread];
  boost::asio::post(owner.loop().io(), [&owner, session_id] {
    Session* s = owner.sessions_.find(session_id);
    if (s && s->in_transit()) owner.sessions_.destroy(*s, owner.index_);
  });
}

void ClientThread::end_transit(const SessionId& session_id) {
  const unsigned thread = session_id.thread();
  if (thread >= thread_count()) return;
  ClientThread& owner = *peers_[thread];
  boost::asio::post(owner.loop().io(), [&owner, session_id] {
    Session* s = owner.sessions_.find(session_id);
    if (!s || !s->in_transit()) return;
    s->end_transit(core::mono_ms());
    owner.on_session_detached(*s);
  });
}

void ClientThread::on_session_detached(Session& session) {
  sessions_.on_detached(session);
  detached_addresses_.push_back(session.client_address());
  if (budget_check_posted_) return;
  budget_check_posted_ = true;
  boost::asio::post(loop_.io(), [this] { enforce_detached_budget(); });
}

void ClientThread::enforce_detached_budget() {
  budget_check_posted_ = false;
  const ops::Config& config = this->config();
  const size_t threads = std::max<size_t>(1, thread_count());  // peers unset: this one alone
  // Both budgets are process-wide, split evenly over the threads (each thread keeps its own).
  const size_t per_ip =
      config.max_detached_per_ip != 0 ? config.max_detached_per_ip : config.max_connections_per_ip;
  const size_t per_thread = (config.max_detached_sessions + threads - 1) / threads;
  const size_t per_address = (per_ip + threads - 1) / threads;
  size_t evicted = 0;
  for (uint32_t address : detached_addresses_)
    evicted += sessions_.evict_over_budget(address, per_thread, per_address, index_);
  detached_addresses_.clear();
  if (evicted > 0) loop_.stats().detached_evicted.add(evicted);
}

void ClientThread::on_websocket_closed() {
  loop_.stats().connections_closed.add();
}

}  // namespace odin::session
