// Client requests and their replies (see requests.hpp). Control traffic is rare next to the
// fan-out, so clarity wins here: requests are parsed with simdjson's DOM and replies are
// written by hand into the thread's scratch string.
#include "session/requests.hpp"
#include "ops/clock.hpp"

#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "hub/channel_name.hpp"
#include "hub/envelope.hpp"
#include "net/connection.hpp"
#include "net/event_loop.hpp"
#include "ops/json.hpp"
#include "session/session.hpp"

namespace odin {

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
  void send(Connection& conn, std::string_view id_json) {
    if (!id_json.empty()) out_.append(",\"id\":").append(id_json);
    out_.push_back('}');
    conn.send_text(out_);
  }

 private:
  std::string& out_;
};

void send_error(Connection& conn, std::string_view id_json, std::string_view code,
                std::string_view message) {
  Reply reply(conn.loop().json_scratch(), "error");
  reply.out().append(",\"data\":{\"code\":\"").append(code).append("\",\"message\":");
  json::append_string(reply.out(), message);
  reply.out().push_back('}');
  reply.send(conn, id_json);
}

// A data message re-sent outside the fan-out (replay, snapshot, resume): same bytes as fan-out.
void send_data(Connection& conn, uint64_t seq, const MessageRef& message) {
  char prefix[kMaxDataPrefixBytes];
  const size_t n = encode_data_prefix(prefix, seq, message->tail.size());
  conn.loop().out().append_shared(conn, {prefix, n}, message, message->tail);
  conn.loop().stats().messages_out.add();
  conn.loop().schedule_flush();
}

// Reads `channels` (or its alias `symbols`) into `out`, duplicates removed, order kept.
bool read_channels(simdjson::dom::element data, std::vector<std::string_view>& out,
                   std::string& problem) {
  simdjson::dom::element list;
  if (data.is_object()) {
    auto object = data.get_object().value_unsafe();
    if (object["channels"].get(list) && object["symbols"].get(list)) {
      problem = "data.channels must be an array of channel names";
      return false;
    }
  } else {
    problem = "data must be an object";
    return false;
  }
  simdjson::dom::array array;
  if (list.get(array) || array.size() == 0) {
    problem = "data.channels must be a non-empty array of channel names";
    return false;
  }
  for (simdjson::dom::element item : array) {
    std::string_view name;
    if (item.get(name) || !is_valid_channel_name(name)) {
      problem = "invalid channel name (1-128 of A-Z a-z 0-9 _ - . :)";
      return false;
    }
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return true;
}

void append_channel_list(std::string& out, std::span<const std::string_view> channels) {
  out.append(",\"data\":{\"channels\":[");
  for (size_t i = 0; i < channels.size(); ++i) {
    if (i) out.push_back(',');
    json::append_string(out, channels[i]);
  }
  out.append("]}");
}

void subscribe_channels(Connection& conn, Session& session,
                        std::span<const std::string_view> channels, bool snapshot,
                        std::string_view id_json) {
  EventLoop& loop = conn.loop();
  SubscriptionIndex& index = loop.fanout().index();
  for (std::string_view channel : channels)
    session.subscribe(index, channel);
  Reply reply(loop.json_scratch(), "subscribed");
  append_channel_list(reply.out(), channels);
  reply.send(conn, id_json);
  if (!snapshot) return;
  for (std::string_view channel : channels) {
    ChannelSubscribers* entry = index.find(channel);
    if (!entry || !entry->latest) continue;
    const uint64_t seq = ++session.seq;
    session.ring.push(seq, entry->latest);
    send_data(conn, seq, entry->latest);
  }
}

bool handle_subscribe(Connection& conn, Session& session, simdjson::dom::element request,
                      std::string_view id_json, bool subscribe) {
  std::vector<std::string_view> channels;
  std::string problem;
  simdjson::dom::element data;
  if (request["data"].get(data) || !read_channels(data, channels, problem)) {
    send_error(conn, id_json, "bad_request",
               problem.empty() ? "data.channels must be an array of channel names" : problem);
    return true;
  }
  if (!subscribe) {
    SubscriptionIndex& index = conn.loop().fanout().index();
    for (std::string_view channel : channels)
      session.unsubscribe(index, channel);
    Reply reply(conn.loop().json_scratch(), "unsubscribed");
    append_channel_list(reply.out(), channels);
    reply.send(conn, id_json);
    return true;
  }
  size_t added = 0;
  for (std::string_view channel : channels)
    added += !session.subscribed_to(channel);
  if (session.subscription_count() + added > conn.loop().config().max_channels_per_conn) {
    send_error(conn, id_json, "too_many_channels",
               "at most " + std::to_string(conn.loop().config().max_channels_per_conn) +
                   " channels per connection");
    return true;
  }
  bool snapshot = false;
  if (data.is_object()) {
    bool flag = false;
    if (!data["snapshot"].get(flag)) snapshot = flag;
  }
  subscribe_channels(conn, session, channels, snapshot, id_json);
  return true;
}

bool read_uint(simdjson::dom::element value, uint64_t& out) {
  if (value.is_uint64()) return !value.get(out);
  if (value.is_int64()) {
    int64_t v = 0;
    if (value.get(v) || v < 0) return false;
    out = static_cast<uint64_t>(v);
    return true;
  }
  return false;
}

void handle_replay(Connection& conn, Session& session, simdjson::dom::element request,
                   std::string_view id_json) {
  simdjson::dom::element data;
  simdjson::dom::element from_value;
  uint64_t from = 0;
  uint64_t to = session.seq;
  if (request["data"].get(data) || !data.is_object() || data["from"].get(from_value) ||
      !read_uint(from_value, from) || from == 0) {
    send_error(conn, id_json, "bad_request", "replay needs data.from, a seq >= 1");
    return;
  }
  simdjson::dom::element to_value;
  if (!data["to"].get(to_value) && !read_uint(to_value, to)) {
    send_error(conn, id_json, "bad_request", "data.to must be a seq");
    return;
  }
  if (from > to) {
    send_error(conn, id_json, "bad_request", "data.from is after data.to");
    return;
  }
  conn.loop().stats().replay_requests.add();
  const uint32_t sent = session.ring.for_range(
      from, to, [&](uint64_t seq, const MessageRef& message) { send_data(conn, seq, message); });
  const uint64_t first_available =
      session.ring.empty() ? session.seq + 1 : session.ring.first_seq();
  Reply reply(conn.loop().json_scratch(), "replay_done");
  std::string& out = reply.out();
  out.append(",\"data\":{\"from\":");
  json::append_uint(out, from);
  out.append(",\"to\":");
  json::append_uint(out, to);
  out.append(",\"sent\":");
  json::append_uint(out, sent);
  out.append(",\"first_available\":");
  json::append_uint(out, first_available);
  out.push_back('}');
  reply.send(conn, id_json);
}

struct ResumeRequest {
  uint64_t session_id = 0;
  uint64_t last_seq = 0;
  bool valid = false;
};

ResumeRequest read_resume(simdjson::dom::element request) {
  ResumeRequest r;
  simdjson::dom::element data;
  std::string_view id_text;
  simdjson::dom::element last;
  if (request["data"].get(data) || !data.is_object() || data["session"].get(id_text) ||
      data["last_seq"].get(last) || !read_uint(last, r.last_seq)) {
    return r;
  }
  r.valid = Session::parse_id(id_text, r.session_id);
  return r;
}

// Resumes `resume` on this thread for `conn` (whose current session is the fresh one, or none
// when it arrived from another thread). Returns false when the session cannot be resumed.
bool resume_here(Connection& conn, const ResumeRequest& resume, std::string_view id_json) {
  EventLoop& loop = conn.loop();
  Session* old = loop.sessions().find(resume.session_id);
  if (!old || old == conn.session()) return false;
  if (!old->connection && wall_ms() - old->detached_at_ms >= loop.config().resume_ttl.count()) {
    return false;
  }
  if (resume.last_seq > old->seq) return false;
  if (resume.last_seq < old->seq &&
      (old->ring.empty() || old->ring.first_seq() > resume.last_seq + 1)) {
    return false;  // never partial: the ring no longer reaches back far enough
  }
  if (old->connection) old->connection->close(ws::close_code::kNormal, "session resumed elsewhere");
  if (Session* fresh = conn.session()) {
    conn.rebind(*old);
    loop.sessions().destroy(*fresh, loop.fanout().index());
  } else {
    conn.rebind(*old);
  }
  const uint32_t replayed =
      old->ring.for_range(resume.last_seq + 1, old->seq,
                          [&](uint64_t seq, const MessageRef& m) { send_data(conn, seq, m); });
  Reply reply(loop.json_scratch(), "resumed");
  reply.out().append(",\"data\":{\"session\":\"").append(old->id_text()).append("\",\"replayed\":");
  json::append_uint(reply.out(), replayed);
  reply.out().push_back('}');
  reply.send(conn, id_json);
  loop.stats().resumes_ok.add();
  return true;
}

void resume_failed(Connection& conn, std::string_view id_json) {
  conn.loop().stats().resumes_failed.add();
  send_error(conn, id_json, "resume_failed",
             "session unknown, expired, or missed more than its replay buffer holds");
}

struct ParsedRequest {
  simdjson::dom::element root;
  std::string_view type;
  std::string id_json;
  bool is_object = false;  // parsed, and a JSON object
  bool ok = false;         // ... with a string "type"
};

ParsedRequest parse_request(EventLoop& loop, std::string_view text) {
  ParsedRequest p;
  simdjson::dom::element root;
  if (loop.json_parser().parse(text.data(), text.size()).get(root) || !root.is_object()) return p;
  p.root = root;
  p.is_object = true;
  simdjson::dom::element id;
  if (!root["id"].get(id)) p.id_json = simdjson::minify(id);
  if (root["type"].get(p.type)) return p;
  p.ok = true;
  return p;
}

}  // namespace

bool handle_client_request(Connection& conn, Session& session, std::string_view text) {
  EventLoop& loop = conn.loop();
  ThreadStats& stats = loop.stats();
  const bool first = !conn.saw_request;
  conn.saw_request = true;

  ParsedRequest request = parse_request(loop, text);

  const int64_t now = steady_ns();
  const TokenBucketPolicy policy{loop.config().client_rate, loop.config().client_burst};
  if (session.bucket.full(policy, now)) session.refused_since_full = 0;
  if (!session.bucket.try_take(policy, now)) {
    stats.rate_limited.add();
    if (++session.refused_since_full >= kRateLimitStrikes) {
      stats.rate_limit_closes.add();
      conn.close(ws::close_code::kPolicy, "rate limit exceeded");
      return false;
    }
    send_error(conn, request.id_json, "rate_limited", "too many requests");
    return true;
  }
  stats.requests.add();

  if (!request.ok) {
    send_error(conn, request.id_json, "bad_request",
               request.is_object ? "\"type\" must be a string" : "not a JSON object");
    return true;
  }
  const std::string_view type = request.type;
  if (type == "subscribe" || type == "unsubscribe") {
    return handle_subscribe(conn, session, request.root, request.id_json, type == "subscribe");
  }
  if (type == "heartbeat") {
    Reply reply(loop.json_scratch(), "pong");
    reply.out().append(",\"ts\":");
    json::append_int(reply.out(), wall_ms());
    reply.send(conn, request.id_json);
    return true;
  }
  if (type == "replay") {
    handle_replay(conn, session, request.root, request.id_json);
    return true;
  }
  if (type == "resume") {
    if (!first) {
      send_error(conn, request.id_json, "bad_request",
                 "resume must be the first request of a connection");
      return true;
    }
    ResumeRequest resume = read_resume(request.root);
    if (!resume.valid) {
      send_error(conn, request.id_json, "bad_request",
                 "resume needs data.session and data.last_seq");
      return true;
    }
    const unsigned owner = Session::thread_of(resume.session_id);
    if (owner != loop.index() && owner < loop.gateway_thread_count()) {
      conn.migrate(owner, MigrationPurpose::kResume, std::string(text), session.id());
      return true;
    }
    if (!resume_here(conn, resume, request.id_json)) resume_failed(conn, request.id_json);
    return true;
  }
  send_error(conn, request.id_json, "unknown_type", "unknown request type");
  return true;
}

void continue_migrated(Connection& conn, MigratingConnection& moving) {
  EventLoop& loop = conn.loop();
  ParsedRequest request = parse_request(loop, moving.request);
  bool resumed = false;
  if (moving.purpose == MigrationPurpose::kResume) {
    resumed = request.ok && resume_here(conn, read_resume(request.root), request.id_json);
    if (resumed) {
      loop.discard_session_elsewhere(moving.fresh_session);
    } else {
      // Back to the thread of the session `welcome` announced, to continue there.
      conn.migrate(Session::thread_of(moving.fresh_session), MigrationPurpose::kResumeFailed,
                   std::move(moving.request), moving.fresh_session);
      for (std::string& queued : moving.queued)
        conn.queue_while_migrating(std::move(queued));
      return;
    }
  } else {
    Session* fresh = loop.sessions().find(moving.fresh_session);
    if (!fresh) {
      fresh = &loop.sessions().create(moving.fresh_session, loop.config().replay_size);
    }
    conn.rebind(*fresh);
    resume_failed(conn, request.id_json);
  }
  for (const std::string& queued : moving.queued) {
    if (!conn.session() || !handle_client_request(conn, *conn.session(), queued)) break;
  }
}

void send_welcome(Connection& conn, Session& session) {
  const Config& config = conn.loop().config();
  Reply reply(conn.loop().json_scratch(), "welcome");
  std::string& out = reply.out();
  out.append(",\"ts\":");
  json::append_int(out, wall_ms());
  out.append(",\"data\":{\"session\":\"").append(session.id_text()).append("\",\"heartbeat_ms\":");
  json::append_int(out, config.ping_interval.count());
  out.append(",\"replay_size\":");
  json::append_uint(out, config.replay_size);
  out.append(",\"resume_ttl_ms\":");
  json::append_int(out, config.resume_ttl.count());
  out.push_back('}');
  reply.send(conn, {});
}

void subscribe_at_connect(Connection& conn, Session& session,
                          std::span<const std::string_view> channels) {
  subscribe_channels(conn, session, channels, false, {});
}

}  // namespace odin
