// Parsing of one client request (PROTOCOL.md "Client to server") into what it asks for, apart
// from answering it: pure, so it can be unit-tested and fuzzed without a connection. What depends
// on the session (rate limit, channel cap, the default end of a replay, resume-first) stays with
// the caller, session/requests.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/unique_channels.hpp"
#include "pubsub/subscription_index.hpp"
#include "session/session_id.hpp"

namespace simdjson::dom {
class parser;
}

namespace odin::session {

enum class RequestKind : uint8_t {
  kInvalid,  // not a JSON object, or no string "type"
  kUnknown,  // a "type" the gateway does not know
  kSubscribe,
  kUnsubscribe,
  kHeartbeat,
  kReplay,
  kResume,
  kAuth,
};

// An error reply's code and message: static text, sent as they are.
struct RequestError {
  std::string_view code;
  std::string_view message;
};

// What a request asks for. Every std::string_view member points into `parser`'s document and is
// valid only until the parser parses again; id_json is a copy. The fields of a kind are meaningful
// only when `error` is unset.
struct ClientRequest {
  RequestKind kind = RequestKind::kInvalid;
  std::string id_json;  // the request's "id", minified, to echo in the reply; empty when absent
  // Set when the request cannot be served as written: always for kInvalid and kUnknown, and for
  // a known type whose fields are wrong (kind still says which type it was, because some checks
  // of the caller, such as "resume must come first", take precedence over field errors).
  std::optional<RequestError> error;

  // kSubscribe, kUnsubscribe, and kResume with resume_last_pos: valid names, duplicates removed,
  // first-seen order. Reading stops at max_channels + 1 names: more than max_channels means the
  // list is over the cap (the caller refuses it) and its rest was not read.
  std::vector<std::string_view> channels;
  bool snapshot = false;  // kSubscribe: data.snapshot
  // kSubscribe: data.delivery / data.max_hz, when either was given (max_hz implies latest).
  std::optional<pubsub::DeliveryOptions> delivery;
  bool max_hz_given = false;
  // kReplay: from >= 1; to, when given, >= from (when absent it means the session's last seq).
  uint64_t replay_from = 0;
  std::optional<uint64_t> replay_to;
  // kResume: data.session as sent, decoded when it has the form of our ids (anything else names
  // no session of this gateway: resume_failed, not bad_request), and data.last_seq.
  std::string_view resume_session;
  std::optional<SessionId> resume_session_id;
  uint64_t resume_last_seq = 0;
  // kResume on another instance: data.last_pos, set only together with `channels`.
  std::optional<uint64_t> resume_last_pos;
  // kResume with resume_last_pos: data.options, the channels that are not `all`.
  std::vector<std::pair<std::string_view, pubsub::DeliveryOptions>> resume_options;
  // kAuth: data.token.
  std::string_view auth_token;
};

// The range of data.max_hz.
constexpr double kMinMaxHz = 0.1;
constexpr double kMaxMaxHz = 1000;

// The largest `last_seq` a resume may carry: seqs go on from there and must stay exact in a
// JavaScript number (below 2^53), with room for 2^32 more messages.
constexpr uint64_t kMaxResumableSeq = (uint64_t{1} << 53) - (uint64_t{1} << 32);

// Parses `text` with `parser` (one per thread: the DOM parser reuses its memory). A channel list
// costs time linear in its length and is read up to max_channels + 1 distinct names (the
// per-connection cap, WS_MAX_CHANNELS_PER_CONN); an unsubscribe over it is refused with
// `too_many_channels`.
ClientRequest parse_client_request(std::string_view text, simdjson::dom::parser& parser,
                                   size_t max_channels = core::kNoChannelCap);

}  // namespace odin::session
