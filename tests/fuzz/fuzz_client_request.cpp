// Fuzzes parse_client_request, the parsing of every text message a WebSocket client sends
// (subscribe, unsubscribe, heartbeat, replay, resume, auth), the input is the message itself.
// Invariants beyond "no crash, no leak, no UB":
//  - kInvalid and kUnknown always carry an error; every error has a known code and a message;
//  - subscribe/unsubscribe, and resume with last_pos: 1 or more channel names, all valid,
//    distinct, no more than the message could hold; snapshot only on subscribe;
//  - replay: from >= 1, and to >= from when given;
//  - resume: an id exactly when SessionId::parse accepts the text (32 hex digits), with that text;
//  - the echoed id, when present, is itself valid JSON;
//  - parsing the same text again gives the same result (the parser's reuse leaks nothing);
//  - parsed with a channel cap (kCap), the result is the uncapped one when its list is within
//    the cap; otherwise the list stops at the first kCap + 1 names of the uncapped one, and only
//    an unsubscribe is refused for it (too_many_channels).
#include <simdjson.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/channel_name.hpp"
#include "session/client_request.hpp"
#include "session/session.hpp"

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) violated(what);
}

std::string summary(const odin::session::ClientRequest& r) {
  std::string s = std::to_string(static_cast<int>(r.kind)) + "|" + r.id_json + "|";
  if (r.error) s.append(r.error->code).append(":").append(r.error->message);
  s.append("|");
  for (std::string_view c : r.channels)
    s.append(c).append(",");
  s +=
      std::to_string(r.resume_last_pos.value_or(0)) + std::to_string(r.resume_last_pos.has_value());
  s += std::to_string(r.snapshot) + "|" + std::to_string(r.replay_from) + "|" +
       std::to_string(r.replay_to.value_or(0)) + std::to_string(r.replay_to.has_value()) + "|" +
       std::string(r.resume_session) + "|" +
       (r.resume_session_id ? r.resume_session_id->text() : std::string("-")) + "|" +
       std::to_string(r.resume_last_seq) + "|" + std::string(r.auth_token);
  return s;
}

void check_request(const odin::session::ClientRequest& r, std::string_view text) {
  using odin::session::RequestKind;
  if (r.kind == odin::session::RequestKind::kInvalid ||
      r.kind == odin::session::RequestKind::kUnknown) {
    check(r.error.has_value(), "invalid or unknown request without an error");
  }
  if (r.error) {
    check(r.error->code == (r.kind == odin::session::RequestKind::kUnknown ? "unknown_type"
                                                                           : "bad_request") ||
              (r.kind == odin::session::RequestKind::kUnsubscribe &&
               r.error->code == "too_many_channels"),
          "unexpected error code");
    check(r.channels.empty(), "channels left on an error");
    check(!r.error->message.empty(), "error without a message");
    return;  // the fields mean nothing then
  }
  const bool has_list = r.kind == odin::session::RequestKind::kSubscribe ||
                        r.kind == odin::session::RequestKind::kUnsubscribe ||
                        (r.kind == odin::session::RequestKind::kResume && r.resume_last_pos);
  check(has_list || r.channels.empty(), "channels on a request that has none");
  switch (r.kind) {
    case odin::session::RequestKind::kSubscribe:
    case odin::session::RequestKind::kUnsubscribe:
    case odin::session::RequestKind::kResume:
      if (!has_list) break;
      check(!r.channels.empty(), "a channel list without channels");
      // Each name takes at least its quotes and a separator in the text.
      check(r.channels.size() * 3 <= text.size(), "more channels than the text can hold");
      for (size_t i = 0; i < r.channels.size(); ++i) {
        check(odin::core::is_valid_channel_name(r.channels[i]), "invalid channel name accepted");
        for (size_t j = 0; j < i; ++j)
          check(r.channels[j] != r.channels[i], "duplicate channel name");
      }
      check(r.kind == odin::session::RequestKind::kSubscribe || !r.snapshot,
            "snapshot on unsubscribe");
      break;
    default:
      break;
  }
  switch (r.kind) {
    case odin::session::RequestKind::kReplay:
      check(r.replay_from >= 1, "replay from 0");
      check(!r.replay_to || *r.replay_to >= r.replay_from, "replay to before from");
      break;
    case odin::session::RequestKind::kResume: {
      // Any string names a session; one of our form decodes, and encodes back to the same text.
      check(!r.resume_session_id || r.resume_session_id->text() == r.resume_session,
            "resume session id does not encode back to the text given");
      check(r.resume_session_id.has_value() ==
                odin::session::SessionId::parse(r.resume_session).has_value(),
            "resume session id decoded inconsistently");
      check(r.resume_last_seq <= odin::session::kMaxResumableSeq,
            "resume last_seq beyond 2^53 - 2^32");
      break;
    }
    default:
      break;
  }
}

// The capped parse against the uncapped one (see the top comment).
void check_capped(const odin::session::ClientRequest& whole,
                  const odin::session::ClientRequest& capped, size_t cap) {
  check(capped.channels.size() <= cap + 1, "capped list longer than cap + 1");
  if (!whole.error && whole.channels.size() <= cap) {
    check(summary(capped) == summary(whole), "the cap changed a request within it");
    return;
  }
  if (capped.error && capped.error->code == "too_many_channels") {
    check(capped.kind == odin::session::RequestKind::kUnsubscribe,
          "too_many_channels not on unsubscribe");
    check(whole.error || whole.channels.size() > cap, "too_many_channels within the cap");
    return;
  }
  if (!whole.error && !capped.error) {
    check(std::equal(capped.channels.begin(), capped.channels.end(), whole.channels.begin()),
          "capped names are not the first of the whole list");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static simdjson::dom::parser parser;  // reused across inputs, as the gateway reuses its own
  static simdjson::dom::parser id_parser;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const odin::session::ClientRequest r = odin::session::parse_client_request(text, parser);
  check_request(r, text);
  if (!r.id_json.empty()) {
    simdjson::dom::element id;
    check(!id_parser.parse(r.id_json).get(id), "echoed id is not valid JSON");
    check(simdjson::minify(id) == r.id_json, "echoed id is not minified");
  }
  const std::string first = summary(r);
  check(summary(odin::session::parse_client_request(text, parser)) == first,
        "second parse differs");
  // A cap small enough to be reached by short inputs.
  constexpr size_t kCap = 3;
  const odin::session::ClientRequest whole = odin::session::parse_client_request(text, parser);
  static simdjson::dom::parser capped_parser;
  const odin::session::ClientRequest capped =
      odin::session::parse_client_request(text, capped_parser, kCap);
  check_request(capped, text);
  check_capped(whole, capped, kCap);
  return 0;
}
