// Client requests and their replies (see requests.hpp). Control traffic is rare next to the
// fan-out, so clarity wins here: requests are parsed with simdjson's DOM (client_request.cpp,
// into the thread's parser) and replies are written by hand into the thread's scratch string.
#include "session/requests.hpp"
#include "core/clock.hpp"

#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <memory>
#include <optional>
#include <vector>

#include "auth/jwt.hpp"
#include "core/envelope.hpp"
#include "core/json.hpp"
#include "fmt/format.h"
#include "net/event_loop.hpp"
#include "session/client.hpp"
#include "session/client_request.hpp"
#include "session/client_thread.hpp"
#include "session/session.hpp"
#include "spdlog/spdlog.h"

namespace odin::session {

namespace {

// Refused requests since the bucket was last full that make a client an abuser (1008).
constexpr uint32_t kRateLimitStrikes = 50;

// One reply under construction: `{"type":"<type>"` ... `,"id":<id>}`.
class Reply {
 public:
  Reply(std::string& buffer, std::string_view type) : out_(buffer) {
    out_.clear();
    out_.append("{\"type\":\"").append(type).append("\"");
  }
  std::string& out() { return out_; }
  void send(Client& client, std::string_view id_json) {
    if (!id_json.empty()) out_.append(",\"id\":").append(id_json);
    out_.push_back('}');
    client.send_text(out_);
  }

 private:
  std::string& out_;
};

void send_error(Client& client, std::string_view id_json, std::string_view code,
                std::string_view message) {
  Reply reply(client.thread().json_scratch(), "error");
  reply.out().append(",\"data\":{\"code\":\"").append(code).append("\",\"message\":");
  core::json::append_string(reply.out(), message);
  reply.out().push_back('}');
  reply.send(client, id_json);
}

// A data message re-sent outside the fan-out (replay, snapshot, resume): same bytes as fan-out.
// A re-send (replay, resume) of frame `seq`, with the `conflated` count it first went out with.
void send_data(Client& client, const Session* session, uint64_t seq,
               const core::MessageRef& message) {
  if (!client.make_room_for_output()) return;  // closed as a slow consumer: the rest is moot
  append_data_frame(client.loop().out(), client.connection(), seq, message,
                    session ? session->conflated_of(seq) : 0);
  client.loop().stats().messages_out.add();
  client.loop().schedule_flush();
}

// A message numbered now for this client (a snapshot, a restore), through Session::deliver: it is
// numbered and kept for replay even when the client was just closed as a slow consumer.
void deliver_now(Client& client, Session& session, const core::MessageRef& message) {
  client.make_room_for_output();
  if (!session.deliver(message, client.loop().out())) return;
  client.loop().stats().messages_out.add();
  client.loop().schedule_flush();
}

void append_channel_list(std::string& out, std::span<const std::string_view> channels) {
  out.append(",\"data\":{\"channels\":[");
  for (size_t i = 0; i < channels.size(); ++i) {
    if (i) out.push_back(',');
    core::json::append_string(out, channels[i]);
  }
  out.append("]}");
}

bool positions_on(const net::EventLoop& loop) {
  return loop.config().broker == ops::BrokerKind::kJetStream;
}

// JetStream: `,"pos":P` before the closing brace of a reply's data (docs/protocol.md): every
// message of the connection's channels up to P went out before this reply.
void append_position(std::string& out, uint64_t pos) {
  out.pop_back();
  out.append(",\"pos\":");
  core::json::append_uint(out, pos);
  out.push_back('}');
}

// `options`: the request's delivery options, when it gave any (they then apply to subscriptions
// that exist too); `max_hz_given` says whether the echo names max_hz.
void subscribe_channels(Client& client, Session& session,
                        std::span<const std::string_view> channels, bool snapshot,
                        std::string_view id_json,
                        const std::optional<pubsub::DeliveryOptions>& options = std::nullopt,
                        bool max_hz_given = false) {
  net::EventLoop& loop = client.loop();
  ClientThread& thread = client.thread();
  pubsub::SubscriptionIndex& index = thread.index();
  for (std::string_view channel : channels) {
    if (!options) {
      index.subscribe(session, channel);
      continue;
    }
    // Becoming `all`: what it held goes out first, in order.
    if (!options->latest) session.release_held(index, channel, loop.out());
    index.subscribe(session, channel, *options);
  }
  // A `latest` channel can only skip what is still in the gateway's backlog.
  if (options && options->latest) {
    client.connection().limit_unsent_in_kernel(
        static_cast<uint32_t>(std::min<uint64_t>(loop.config().conflate_bytes, 1u << 30)));
  }
  loop.schedule_flush();
  Reply reply(thread.json_scratch(), "subscribed");
  append_channel_list(reply.out(), channels);
  if (options) {
    std::string& out = reply.out();
    out.pop_back();
    out.append(options->latest ? ",\"delivery\":\"latest\"" : ",\"delivery\":\"all\"");
    if (max_hz_given) {
      out.append(",\"max_hz\":");
      fmt::format_to(std::back_inserter(out), "{}", options->max_hz);  // shortest: 4, 0.5
    }
    out.push_back('}');
  }
  if (positions_on(loop)) append_position(reply.out(), thread.index().last_pos());
  reply.send(client, id_json);
  if (!snapshot) return;
  for (std::string_view channel : channels) {
    pubsub::ChannelSubscribers* entry = index.find(channel);
    if (!entry || !entry->latest) continue;
    client.make_room_for_output();
    if (!session.deliver_snapshot(index, entry->latest, core::steady_ns(), loop.out())) continue;
    loop.stats().messages_out.add();
    loop.schedule_flush();
  }
}

// WS_MAX_CHANNELS: this thread keeps state for as many channels as it may.
void send_channel_limit(Client& client, std::string_view id_json) {
  send_error(client, id_json, "channel_limit",
             "the server holds as many channels as it may (" +
                 std::to_string(client.thread().index().max_channels()) + "); try later");
}

void handle_subscribe(Client& client, Session& session, const ClientRequest& request) {
  const std::vector<std::string_view>& channels = request.channels;
  if (request.kind == RequestKind::kUnsubscribe) {
    pubsub::SubscriptionIndex& index = client.thread().index();
    for (std::string_view channel : channels)
      index.unsubscribe(session, channel);
    Reply reply(client.thread().json_scratch(), "unsubscribed");
    append_channel_list(reply.out(), channels);
    reply.send(client, request.id_json);
    return;
  }
  // All or nothing, like the other refusals.
  if (const std::string_view* refused = auth::first_forbidden(client.token(), channels)) {
    client.loop().stats().forbidden.add();
    send_error(client, request.id_json, "forbidden",
               "channel " + std::string(*refused) + " is not allowed by the token");
    return;
  }
  size_t added = 0;
  for (std::string_view channel : channels)
    added += !session.subscribed_to(channel);
  if (session.subscription_count() + added > client.loop().config().max_channels_per_conn) {
    send_error(client, request.id_json, "too_many_channels",
               "at most " + std::to_string(client.loop().config().max_channels_per_conn) +
                   " channels per connection");
    return;
  }
  if (!client.thread().index().has_room_for(channels)) {
    send_channel_limit(client, request.id_json);
    return;
  }
  subscribe_channels(client, session, channels, request.snapshot, request.id_json, request.delivery,
                     request.max_hz_given);
}

void send_replay_done(Client& client, const ReplayInProgress& replay) {
  Reply reply(client.thread().json_scratch(), "replay_done");
  std::string& out = reply.out();
  out.append(",\"data\":{\"from\":");
  core::json::append_uint(out, replay.from);
  out.append(",\"to\":");
  core::json::append_uint(out, replay.to);
  out.append(",\"sent\":");
  core::json::append_uint(out, replay.messages.size());
  out.append(",\"first_available\":");
  core::json::append_uint(out, replay.first_available);
  out.push_back('}');
  reply.send(client, replay.id_json);
}

void handle_replay(Client& client, Session& session, const ClientRequest& request) {
  const uint64_t from = request.replay_from;
  const uint64_t to = request.replay_to.value_or(session.seq());
  if (from > to) {  // parse_client_request checked an explicit `to`; this is the default one
    send_error(client, request.id_json, "bad_request", "data.from is after data.to");
    return;
  }
  client.loop().stats().replay_requests.add();
  auto replay = std::make_unique<ReplayInProgress>();
  replay->from = from;
  replay->to = to;
  replay->first_available = session.ring().empty() ? session.seq() + 1 : session.ring().first_seq();
  replay->id_json = request.id_json;
  replay->messages.reserve(session.ring().size());
  session.ring().for_range(from, to, [&](uint64_t seq, const core::MessageRef& message) {
    if (replay->messages.empty()) replay->first_seq = seq;
    replay->messages.push_back(message);
  });
  if (!continue_replay(client, *replay)) client.hold_replay(std::move(replay));
}
// `auth`: a fresh token for this connection (docs/protocol.md). The token is copied first: the
// request's views point into the parser's document, which verifying the token parses over.
void handle_auth(Client& client, Session& session, const ClientRequest& request,
                 const auth::JwtVerifier& verifier) {
  net::EventLoop& loop = client.loop();
  ClientThread& thread = client.thread();
  const std::string token_text(request.auth_token);
  auth::TokenCheck check =
      verifier.verify(token_text, core::wall_ms() / 1000, thread.json_parser());
  if (!check.claims) {
    send_error(client, request.id_json, "invalid_token", check.error);
    return;
  }
  const auth::TokenClaims* current = client.token();
  if (current && current->subject != check.claims->subject) {
    send_error(client, request.id_json, "forbidden", "the token is for another subject");
    return;
  }
  // Channels the new token no longer allows end now.
  std::vector<std::string> dropped;
  for (const pubsub::Subscriber::Subscription& sub : session.subscriptions()) {
    if (!auth::token_allows(&*check.claims, sub.channel->name))
      dropped.push_back(sub.channel->name);
  }
  if (!dropped.empty()) {
    std::vector<std::string_view> names(dropped.begin(), dropped.end());
    for (std::string_view name : names)
      thread.index().unsubscribe(session, name);
    Reply notice(thread.json_scratch(), "unsubscribed");
    append_channel_list(notice.out(), names);
    notice.send(client, {});
  }
  const int64_t expires_at = check.claims->expires_at;
  client.set_token(std::make_unique<auth::TokenClaims>(std::move(*check.claims)));
  loop.stats().tokens_refreshed.add();
  Reply reply(thread.json_scratch(), "authenticated");
  reply.out().append(",\"data\":{\"expires_at\":");
  if (expires_at == 0) {
    reply.out().append("null");
  } else {
    core::json::append_int(reply.out(), auth::seconds_to_ms(expires_at));
  }
  reply.out().push_back('}');
  reply.send(client, request.id_json);
}

// With authentication on, only the subject that opened a session may resume it, and only with a
// token that allows every channel it is subscribed to (the resume re-sends what they carried).
bool token_may_resume(const Client& client, const Session& session) {
  const auth::TokenClaims* token = client.token();
  if (!token) return true;
  // Tokens without `sub` would all share one identity: any of them could take the others'
  // sessions.
  if (token->subject.empty() || token->subject != session.subject()) return false;
  return !auth::first_forbidden(
      token, session.subscriptions(),
      [](const pubsub::Subscriber::Subscription& sub) -> std::string_view {
        return sub.channel->name;
      });
}

// Resumes the session `request` names on this thread for `client` (whose current session is the
// fresh one, or none when it arrived from another thread). Returns false when the session cannot
// be resumed.
bool resume_here(Client& client, const ClientRequest& request) {
  net::EventLoop& loop = client.loop();
  ClientThread& thread = client.thread();
  const std::string_view id_json = request.id_json;
  if (!request.resume_session_id) return false;  // not the form of our ids
  Session* old = thread.sessions().find(*request.resume_session_id);
  if (!old || old == client.session()) return false;
  // Its connection is on its way to another thread and may come back to it.
  if (old->in_transit()) return false;
  if (!token_may_resume(client, *old)) return false;
  if (old->detached() &&
      core::mono_ms() - old->detached_at_ms() >= loop.config().resume_ttl.count()) {
    return false;
  }
  if (request.resume_last_seq > old->seq()) return false;
  if (request.resume_last_seq < old->seq() &&
      (old->ring().empty() || old->ring().first_seq() > request.resume_last_seq + 1)) {
    return false;  // never partial: the ring no longer reaches back far enough
  }
  if (Client* holder = old->client()) {
    holder->take_session();  // handed straight to `client`, never kept as detached
    holder->close(ws::close_code::kNormal, "session resumed elsewhere");
  }
  if (Session* fresh = client.take_session()) thread.sessions().destroy(*fresh, thread.index());
  client.bind_session(*old, false);
  const uint32_t replayed = old->ring().for_range(
      request.resume_last_seq + 1, old->seq(),
      [&](uint64_t seq, const core::MessageRef& m) { send_data(client, old, seq, m); });
  Reply reply(thread.json_scratch(), "resumed");
  reply.out().append(",\"data\":{\"session\":\"").append(old->id_text()).append("\",\"replayed\":");
  core::json::append_uint(reply.out(), replayed);
  reply.out().push_back('}');
  if (positions_on(loop)) {
    append_position(reply.out(), std::max(old->skip_through_pos(), thread.index().last_pos()));
  }
  reply.send(client, id_json);
  loop.stats().resumes_ok.add();
  return true;
}

void resume_failed(Client& client, std::string_view id_json) {
  client.loop().stats().resumes_failed.add();
  send_error(client, id_json, "resume_failed",
             "session unknown, expired, or missed more than its replay buffer holds");
}

enum class Restore : uint8_t { kFailed, kDone, kFetching };

// How many times a restore reads the stream when the history keeps moving on meanwhile.
constexpr unsigned kRestoreReadRounds = 3;

// The seq of `history`'s first entry with a pos after `pos` (last_seq() + 1 when none): the
// entries are in stream order, so a binary search.
uint64_t first_entry_after(const core::ReplayRing<core::MessageRef>& history, uint64_t pos) {
  uint64_t lo = history.first_seq();
  uint64_t hi = history.last_seq() + 1;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    uint64_t mid_pos = 0;
    history.for_range(mid, mid, [&](uint64_t, const core::MessageRef& m) { mid_pos = m->pos; });
    if (mid_pos > pos) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

// Resume on any instance (JetStream, docs/protocol.md): the connection's fresh session becomes
// the continuation of a session this instance never saw, from the client's stream position and
// channels. What the client missed comes from this thread's per-channel histories and, where they
// do not reach back to the client's position, from the stream: then the connection goes through
// the broker (kFetching) and this runs again with `fetched`. Never partial: more than the replay
// buffer holds, or anything out of reach, fails.
Restore restore_from_position(Client& client, const ClientRequest& request,
                              std::string_view request_text,
                              std::unique_ptr<core::StreamFetch> fetched) {
  net::EventLoop& loop = client.loop();
  ClientThread& thread = client.thread();
  Session* session = client.session();
  if (!positions_on(loop) || !request.resume_last_pos || !session || session->seq() != 0) {
    return Restore::kFailed;  // seq != 0: data already went out numbered as the fresh session
  }
  const uint64_t last_pos = *request.resume_last_pos;
  const std::vector<std::string_view>& channels = request.channels;
  if (channels.size() > loop.config().max_channels_per_conn) return Restore::kFailed;
  if (auth::first_forbidden(client.token(), channels)) return Restore::kFailed;
  pubsub::SubscriptionIndex& index = thread.index();
  if (!index.has_room_for(channels)) return Restore::kFailed;  // WS_MAX_CHANNELS

  // Per channel, the pos after which its history has every message; below it (down to
  // last_pos), the stream must be read.
  std::vector<core::StreamRange> missing;
  std::vector<uint64_t> history_from(channels.size(), last_pos);
  for (size_t c = 0; c < channels.size(); ++c) {
    const std::string_view channel = channels[c];
    const std::optional<uint64_t> complete = index.history_complete_after(index.find(channel));
    if (!complete) return Restore::kFailed;  // not yet known from where this instance has it all
    if (last_pos >= *complete) continue;
    const core::StreamRange* read = nullptr;
    if (fetched) {
      for (const core::StreamRange& r : fetched->ranges) {
        if (r.channel == channel && r.after_pos == last_pos && r.through_pos >= *complete)
          read = &r;
      }
    }
    if (read) {
      history_from[c] = read->through_pos;  // what the read covered is not taken twice
    } else {
      missing.push_back({std::string(channel), last_pos, *complete});
    }
  }
  if (!missing.empty()) {
    // The history moved on while the stream was read (with WS_HISTORY_SIZE=0, any message on a
    // channel does): read again, a few times at most.
    const unsigned round = fetched ? fetched->round + 1 : 0;
    if (round >= kRestoreReadRounds) return Restore::kFailed;
    auto fetch = std::make_unique<core::StreamFetch>();
    if (fetched) {
      // Every channel again, so the result is one consistent read.
      missing.clear();
      for (size_t c = 0; c < channels.size(); ++c) {
        const std::optional<uint64_t> complete =
            index.history_complete_after(index.find(channels[c]));
        if (last_pos < *complete)
          missing.push_back({std::string(channels[c]), last_pos, *complete});
      }
    }
    fetch->ranges = std::move(missing);
    fetch->round = round;
    client.migrate(loop.index(), MigrationPurpose::kRestore, std::string(request_text),
                   session->id(), std::move(fetch));
    return Restore::kFetching;
  }
  if (fetched && !fetched->complete) return Restore::kFailed;

  // Everything after the client's position, once, in stream order: counted first (a restore
  // that would send more than WS_REPLAY_SIZE fails before anything is gathered), then merged
  // from the stream read and the per-channel histories, each already in stream order. Nothing
  // is taken twice: the channels are distinct (parse_client_request drops repeats), a message
  // is on one channel, and a channel's history is taken only after what the read covered.
  const uint32_t limit = loop.config().replay_size;
  size_t total = 0;
  if (fetched) {
    for (const std::shared_ptr<const core::Message>& message : fetched->messages)
      total += message->pos > last_pos;
  }
  struct Cursor {
    const core::ReplayRing<core::MessageRef>* history;
    uint64_t next_seq;  // the next entry to take
  };
  std::vector<Cursor> cursors;
  for (size_t c = 0; c < channels.size() && total <= limit; ++c) {
    const pubsub::ChannelSubscribers* entry = index.find(channels[c]);
    if (!entry || entry->history.empty()) continue;
    const uint64_t first = first_entry_after(entry->history, history_from[c]);
    if (first > entry->history.last_seq()) continue;
    total += entry->history.last_seq() - first + 1;
    cursors.push_back({&entry->history, first});
  }
  if (total > limit) return Restore::kFailed;

  std::vector<core::MessageRef> replay;
  replay.reserve(total);
  size_t next_fetched = 0;
  while (replay.size() < total) {
    // The smallest pos among the heads: at most WS_MAX_CHANNELS_PER_CONN cursors, and at most
    // WS_REPLAY_SIZE messages.
    const core::Message* best = nullptr;
    Cursor* from = nullptr;
    core::MessageRef head;
    if (fetched) {
      while (next_fetched < fetched->messages.size() &&
             fetched->messages[next_fetched]->pos <= last_pos)
        ++next_fetched;
      if (next_fetched < fetched->messages.size()) best = fetched->messages[next_fetched].get();
    }
    for (Cursor& cursor : cursors) {
      if (cursor.next_seq > cursor.history->last_seq()) continue;
      cursor.history->for_range(cursor.next_seq, cursor.next_seq,
                                [&](uint64_t, const core::MessageRef& message) {
                                  if (!best || message->pos < best->pos) {
                                    best = &*message;
                                    from = &cursor;
                                    head = message;
                                  }
                                });
    }
    if (!best) break;
    if (from) {
      ++from->next_seq;
      replay.push_back(std::move(head));
    } else {
      replay.push_back(loop.pool().adopt(fetched->messages[next_fetched++]));
    }
  }

  index.unsubscribe_all(*session);  // `?channels=` at connect: the resumed channels replace them
  for (std::string_view channel : channels)
    index.subscribe(*session, channel);
  for (const auto& [channel, options] : request.resume_options)
    index.subscribe(*session, channel, options);
  session->continue_numbering_after(request.resume_last_seq);
  session->skip_restored_through(last_pos);  // these channels only: later ones start here
  // A `latest` channel gets only its newest message, counting the ones before it as conflated.
  std::vector<uint32_t> skipped_before(replay.size(), 0);
  std::vector<bool> send(replay.size(), true);
  for (const auto& [channel, options] : request.resume_options) {
    uint32_t skipped = 0;
    size_t newest = replay.size();
    for (size_t i = 0; i < replay.size(); ++i) {
      if (replay[i]->channel != channel) continue;
      if (newest != replay.size()) {
        send[newest] = false;
        ++skipped;
      }
      newest = i;
    }
    if (newest != replay.size()) skipped_before[newest] = skipped;
  }
  size_t sent = 0;
  for (size_t i = 0; i < replay.size(); ++i) {
    if (!send[i]) continue;
    ++sent;
    if (skipped_before[i] == 0) {
      deliver_now(client, *session, replay[i]);
      continue;
    }
    client.make_room_for_output();
    if (session->deliver_newest_of(index, replay[i], skipped_before[i], loop.out())) {
      loop.stats().messages_out.add();
      loop.schedule_flush();
    }
  }
  Reply reply(thread.json_scratch(), "resumed");
  std::string& out = reply.out();
  out.append(",\"data\":{\"session\":\"").append(session->id_text()).append("\",\"replayed\":");
  core::json::append_uint(out, sent);
  out.append(",\"restored\":true,\"pos\":");
  core::json::append_uint(out, std::max(last_pos, index.last_pos()));
  out.push_back('}');
  reply.send(client, request.id_json);
  loop.stats().resumes_restored.add();
  return Restore::kDone;
}

}  // namespace

bool continue_replay(Client& client, ReplayInProgress& replay) {
  // One part per turn and per write: enough for the kernel to take at once, small enough that a
  // replay of WS_REPLAY_SIZE large messages neither fills the backlog (the slow-consumer rule is
  // for the fan-out, not for what a client asked for) nor holds the thread for long.
  constexpr size_t kReplayPartBytes = 64 * 1024;
  size_t produced = 0;
  while (replay.next < replay.messages.size()) {
    if (produced >= kReplayPartBytes) return false;
    if (!client.open()) return true;  // closed: nothing more to send
    const core::MessageRef& message = replay.messages[replay.next];
    send_data(client, client.session(), replay.first_seq + replay.next, message);
    produced += message->tail.size() + core::kMaxDataPrefixBytes;
    replay.messages[replay.next++] = core::MessageRef();  // sent: no longer pinned by this replay
  }
  send_replay_done(client, replay);
  return true;
}

bool handle_client_request(Client& client, Session& session, std::string_view text) {
  net::EventLoop& loop = client.loop();
  ClientThread& thread = client.thread();
  ops::ThreadStats& stats = loop.stats();
  const bool first = !client.saw_request;
  client.saw_request = true;

  // Parsed before the rate limit: even a refusal echoes the request's id.
  const ClientRequest request =
      parse_client_request(text, thread.json_parser(), loop.config().max_channels_per_conn);

  const int64_t now = core::steady_ns();
  const core::TokenBucketPolicy policy{loop.config().client_rate, loop.config().client_burst};
  const RequestAdmission admission = session.take_request(policy, now, kRateLimitStrikes);
  if (admission != RequestAdmission::kAdmitted) {
    stats.rate_limited.add();
    if (admission == RequestAdmission::kRefusedTooOften) {
      stats.rate_limit_closes.add();
      client.close(ws::close_code::kPolicy, "rate limit exceeded");
      return false;
    }
    send_error(client, request.id_json, "rate_limited", "too many requests");
    return true;
  }
  stats.requests.add();

  switch (request.kind) {
    case RequestKind::kAuth:
      if (!thread.jwt_verifier()) {
        send_error(client, request.id_json, "bad_request", "authentication is not enabled");
        return true;
      }
      break;
    case RequestKind::kResume:
      // Checked before the fields: a late resume is refused whatever it carries.
      if (!first) {
        send_error(client, request.id_json, "bad_request",
                   "resume must be the first request of a connection");
        return true;
      }
      break;
    default:
      break;
  }
  if (request.error) {
    send_error(client, request.id_json, request.error->code, request.error->message);
    return true;
  }
  switch (request.kind) {
    case RequestKind::kSubscribe:
    case RequestKind::kUnsubscribe:
      handle_subscribe(client, session, request);
      return true;
    case RequestKind::kHeartbeat: {
      Reply reply(thread.json_scratch(), "pong");
      reply.out().append(",\"ts\":");
      core::json::append_int(reply.out(), core::wall_ms());
      reply.send(client, request.id_json);
      return true;
    }
    case RequestKind::kReplay:
      handle_replay(client, session, request);
      return true;
    case RequestKind::kResume: {
      const unsigned owner =
          request.resume_session_id ? request.resume_session_id->thread() : loop.index();
      if (owner != loop.index() && owner < thread.thread_count()) {
        client.migrate(owner, MigrationPurpose::kResume, std::string(text), session.id());
        return true;
      }
      if (!resume_here(client, request) &&
          restore_from_position(client, request, text, nullptr) == Restore::kFailed) {
        resume_failed(client, request.id_json);
      }
      return true;
    }
    case RequestKind::kAuth:
      if (auto verifier = thread.jwt_verifier()) handle_auth(client, session, request, *verifier);
      return true;
    case RequestKind::kInvalid:
    case RequestKind::kUnknown:
      break;  // answered above: they always carry an error
  }
  return true;
}

void continue_migrated(Client& client, MigratingConnection& moving) {
  net::EventLoop& loop = client.loop();
  ClientThread& thread = client.thread();
  const ClientRequest request = parse_client_request(moving.request, thread.json_parser(),
                                                     loop.config().max_channels_per_conn);
  bool resumed = false;
  if (moving.purpose == MigrationPurpose::kResume) {
    // The request was checked before it moved; one that fails here goes back to be answered.
    resumed =
        request.kind == RequestKind::kResume && !request.error && resume_here(client, request);
    if (resumed) {
      thread.discard_session_elsewhere(moving.fresh_session);
    } else {
      // Back to the thread of the session `welcome` announced, to continue there.
      client.migrate(moving.fresh_session.thread(), MigrationPurpose::kResumeFailed,
                     std::move(moving.request), moving.fresh_session);
      for (std::string& queued : moving.queued)
        client.queue_while_migrating(std::move(queued));
      return;
    }
  } else {
    // Back on the fresh session's thread: restore from the client's stream position, if it sent
    // one (after reading the stream, for kRestore), or refuse.
    Session* fresh = thread.sessions().find(moving.fresh_session);
    if (fresh && !fresh->in_transit()) {
      // Only this connection may take its session back (the binding invariant, session.hpp);
      // reaching here is a defect, and sharing the session would be a worse one.
      spdlog::error("session {} came back out of transit; closing its connection",
                    moving.fresh_session.text());
      client.close(ws::close_code::kInternalError, "internal error");
      return;
    }
    if (fresh) {
      client.bind_session(*fresh, true);
    } else {  // not expected (in transit, it neither expires nor is evicted): the same identity
              // anew
      const auth::TokenClaims* token = client.token();
      Session& created =
          thread.sessions().create(moving.fresh_session, loop.config().replay_size,
                                   {client.client_address(), token ? token->subject : ""});
      client.bind_session(created, false);
    }
    const bool restorable = request.kind == RequestKind::kResume && !request.error;
    const Restore restore =
        restorable ? restore_from_position(client, request, moving.request, std::move(moving.fetch))
                   : Restore::kFailed;
    if (restore == Restore::kFetching) {
      for (std::string& queued : moving.queued)
        client.queue_while_migrating(std::move(queued));
      return;
    }
    if (restore == Restore::kFailed) resume_failed(client, request.id_json);
  }
  for (const std::string& queued : moving.queued) {
    if (!client.session() || !handle_client_request(client, *client.session(), queued)) break;
  }
}

void send_welcome(Client& client, Session& session) {
  const ops::Config& config = client.loop().config();
  Reply reply(client.thread().json_scratch(), "welcome");
  std::string& out = reply.out();
  out.append(",\"ts\":");
  core::json::append_int(out, core::wall_ms());
  out.append(",\"data\":{\"session\":\"").append(session.id_text()).append("\",\"heartbeat_ms\":");
  core::json::append_int(out, config.ping_interval.count());
  out.append(",\"replay_size\":");
  core::json::append_uint(out, config.replay_size);
  out.append(",\"resume_ttl_ms\":");
  core::json::append_int(out, config.resume_ttl.count());
  out.push_back('}');
  reply.send(client, {});
}

void subscribe_at_connect(Client& client, Session& session,
                          std::span<const std::string_view> channels) {
  if (!client.thread().index().has_room_for(channels)) return send_channel_limit(client, {});
  subscribe_channels(client, session, channels, false, {});
}

}  // namespace odin::session
