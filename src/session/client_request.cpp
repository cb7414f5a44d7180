// Client request parsing (see client_request.hpp). The messages are part of the protocol's
// observable behaviour (clients and the integration tests read them): change them only on purpose.
#include "session/client_request.hpp"

#include <simdjson.h>

#include <algorithm>

#include "core/channel_name.hpp"
#include "core/unique_channels.hpp"
#include "session/session.hpp"

namespace odin::session {

namespace {

constexpr std::string_view kBadRequest = "bad_request";
constexpr std::string_view kChannelsNeeded = "data.channels must be an array of channel names";

constexpr std::string_view kResumeOptions =
    "data.options must map channels of data.channels to {delivery, max_hz}";

void fail(ClientRequest& r, std::string_view message) {
  r.error = RequestError{kBadRequest, message};
}

// Reads `channels` (or its alias `symbols`) into `out`, duplicates removed, order kept, stopping
// once `out` holds cap + 1 names (see ClientRequest::channels). Returns the problem, empty when
// fine.
std::string_view read_channels(simdjson::dom::element data, std::vector<std::string_view>& out,
                               size_t cap) {
  simdjson::dom::element list;
  if (!data.is_object()) return "data must be an object";
  auto object = data.get_object().value_unsafe();
  if (object["channels"].get(list) && object["symbols"].get(list)) return kChannelsNeeded;
  simdjson::dom::array array;
  if (list.get(array) || array.size() == 0) {
    return "data.channels must be a non-empty array of channel names";
  }
  core::UniqueChannels names(out, cap);
  for (simdjson::dom::element item : array) {
    std::string_view name;
    if (item.get(name) || !core::is_valid_channel_name(name)) {
      return "invalid channel name (1-128 of A-Z a-z 0-9 _ - . :)";
    }
    if (!names.add(name)) break;
  }
  return {};
}

// `delivery` and `max_hz` of `object` (docs/protocol.md, latest-value subscriptions) into
// `options` when either is there. Returns the problem, empty when none.
std::string_view read_delivery(simdjson::dom::element object,
                               std::optional<pubsub::DeliveryOptions>& options,
                               bool& max_hz_given) {
  simdjson::dom::element delivery;
  simdjson::dom::element max_hz;
  const bool has_delivery = !object["delivery"].get(delivery);
  const bool has_max_hz = !object["max_hz"].get(max_hz);
  if (!has_delivery && !has_max_hz) return {};
  pubsub::DeliveryOptions read;
  if (has_delivery) {
    std::string_view word;
    if (delivery.get(word) || (word != "all" && word != "latest")) {
      return "delivery must be \"all\" or \"latest\"";
    }
    read.latest = word == "latest";
  }
  if (has_max_hz) {
    double hz = 0;
    if (!max_hz.is_number() || max_hz.get(hz) || !(hz >= kMinMaxHz && hz <= kMaxMaxHz)) {
      return "max_hz must be a number from 0.1 to 1000";
    }
    if (has_delivery && !read.latest) return "max_hz needs \"delivery\":\"latest\"";
    read.latest = true;
    read.max_hz = hz;
    max_hz_given = true;
  }
  options = read;
  return {};
}

void read_subscribe(simdjson::dom::element root, ClientRequest& r, size_t max_channels) {
  simdjson::dom::element data;
  if (root["data"].get(data)) return fail(r, kChannelsNeeded);
  if (std::string_view problem = read_channels(data, r.channels, max_channels); !problem.empty()) {
    r.channels.clear();
    return fail(r, problem);
  }
  // A subscribe over the cap is refused by the caller's per-connection check; an unsubscribe
  // cut short would leave the rest of its list subscribed, so it is refused here.
  if (r.kind == RequestKind::kUnsubscribe && r.channels.size() > max_channels) {
    r.channels.clear();
    r.error = RequestError{"too_many_channels",
                           "more channels in one request than WS_MAX_CHANNELS_PER_CONN"};
    return;
  }
  if (r.kind != RequestKind::kSubscribe) return;
  bool flag = false;
  if (!data["snapshot"].get(flag)) r.snapshot = flag;
  if (std::string_view problem = read_delivery(data, r.delivery, r.max_hz_given);
      !problem.empty()) {
    r.channels.clear();
    r.delivery.reset();
    return fail(r, problem);
  }
}

// A non-negative integer, whichever way simdjson stored it.
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

void read_replay(simdjson::dom::element root, ClientRequest& r) {
  simdjson::dom::element data;
  simdjson::dom::element from_value;
  if (root["data"].get(data) || !data.is_object() || data["from"].get(from_value) ||
      !read_uint(from_value, r.replay_from) || r.replay_from == 0) {
    return fail(r, "replay needs data.from, a seq >= 1");
  }
  simdjson::dom::element to_value;
  if (!data["to"].get(to_value)) {
    uint64_t to = 0;
    if (!read_uint(to_value, to)) return fail(r, "data.to must be a seq");
    r.replay_to = to;
    // Without `to` the caller makes the same check against the session's last seq.
    if (r.replay_from > to) return fail(r, "data.from is after data.to");
  }
}

void read_resume(simdjson::dom::element root, ClientRequest& r, size_t max_channels) {
  simdjson::dom::element data;
  simdjson::dom::element last;
  if (root["data"].get(data) || !data.is_object() || data["session"].get(r.resume_session) ||
      data["last_seq"].get(last) || !read_uint(last, r.resume_last_seq)) {
    return fail(r, "resume needs data.session and data.last_seq");
  }
  // Seqs are JSON numbers a JavaScript client must read exactly: a resumed session continues
  // from last_seq, so it must leave room below 2^53.
  if (r.resume_last_seq > kMaxResumableSeq) {
    return fail(r, "data.last_seq is beyond what a client can count (2^53 - 2^32)");
  }
  r.resume_session_id = SessionId::parse(r.resume_session);
  // Resume on any instance (docs/protocol.md): the client's stream position and channels.
  simdjson::dom::element pos;
  const bool has_pos = !data["last_pos"].get(pos);
  const bool has_channels = !data["channels"].error() || !data["symbols"].error();
  if (!has_pos && !has_channels) return;
  uint64_t last_pos = 0;
  if (!has_pos || !has_channels || !read_uint(pos, last_pos)) {
    return fail(r, "data.last_pos (a stream position) and data.channels go together");
  }
  if (std::string_view problem = read_channels(data, r.channels, max_channels); !problem.empty()) {
    r.channels.clear();
    return fail(r, problem);
  }
  // data.options: the delivery options of the restored channels that are not `all`.
  simdjson::dom::object options;
  if (!data["options"].error()) {
    if (data["options"].get(options)) return fail(r, kResumeOptions);
    for (auto [channel, value] : options) {
      if (std::find(r.channels.begin(), r.channels.end(), channel) == r.channels.end() ||
          !value.is_object()) {
        r.resume_options.clear();
        return fail(r, kResumeOptions);
      }
      std::optional<pubsub::DeliveryOptions> read;
      bool max_hz_given = false;
      if (std::string_view problem = read_delivery(value, read, max_hz_given); !problem.empty()) {
        r.resume_options.clear();
        return fail(r, problem);
      }
      if (read) r.resume_options.emplace_back(channel, *read);
    }
  }
  r.resume_last_pos = last_pos;
}

void read_auth(simdjson::dom::element root, ClientRequest& r) {
  simdjson::dom::element data;
  if (root["data"].get(data) || !data.is_object() || data["token"].get(r.auth_token)) {
    fail(r, "auth needs data.token, a string");
  }
}

}  // namespace

ClientRequest parse_client_request(std::string_view text, simdjson::dom::parser& parser,
                                   size_t max_channels) {
  ClientRequest r;
  simdjson::dom::element root;
  if (parser.parse(text.data(), text.size()).get(root) || !root.is_object()) {
    fail(r, "not a JSON object");
    return r;
  }
  simdjson::dom::element id;
  if (!root["id"].get(id)) r.id_json = simdjson::minify(id);
  std::string_view type;
  if (root["type"].get(type)) {
    fail(r, "\"type\" must be a string");
    return r;
  }
  if (type == "subscribe" || type == "unsubscribe") {
    r.kind = type == "subscribe" ? RequestKind::kSubscribe : RequestKind::kUnsubscribe;
    read_subscribe(root, r, max_channels);
  } else if (type == "heartbeat") {
    r.kind = RequestKind::kHeartbeat;
  } else if (type == "replay") {
    r.kind = RequestKind::kReplay;
    read_replay(root, r);
  } else if (type == "resume") {
    r.kind = RequestKind::kResume;
    read_resume(root, r, max_channels);
  } else if (type == "auth") {
    r.kind = RequestKind::kAuth;
    read_auth(root, r);
  } else {
    r.kind = RequestKind::kUnknown;
    r.error = RequestError{"unknown_type", "unknown request type"};
  }
  return r;
}

}  // namespace odin::session
