// Fuzzes ws::MessageReader::feed, the RFC 6455 reader every client byte after the upgrade goes
// through, with arbitrary client bytes split into reads at fuzzer-chosen points; each input runs
// through a plain reader and through one that accepts compressed messages (RFC 7692), the latter
// with one inflater shared by every run, as a thread shares it between its connections.
//
// Input: byte 0 picks the message size limit (byte 0 % 11) and how the handler behaves (byte 0 /
// 11 % 4: plain; returns false, "stop reading", on every third event as the gateway does when a
// request closes the connection; calls release_buffers() inside every callback as the gateway's
// abort() does; both), byte 1 seeds the read sizes (0: one read), the rest is the client's byte
// stream. Invariants beyond "no crash, no leak, no UB":
//  - a text message is valid UTF-8 by both of the repo's validators (the vectorised whole-string
//    check and the incremental one fed in pieces) and no longer than the limit;
//  - ping/pong payloads are at most 125 bytes, a close has a valid code (or 1005 without one) and
//    a valid UTF-8 reason of at most 123 bytes; nothing is delivered after a close or an error;
//  - no event in the rest of a feed() after the handler said stop; a message stays readable
//    during on_text() even when the handler releases the reader's buffers first;
//  - the reader's memory stays within the limit (+ one control frame) at every step;
//  - the events and the final error are the same whether the stream comes in one read or split
//    (unless the handler stops reading: then what was left of a read is dropped by design):
//    how TCP cuts the stream must not change what the gateway sees;
//  - accepting compression changes nothing for a stream the plain reader did not refuse for its
//    reserved bits (so no RSV1 frame was read); an inflated message obeys the limit like any
//    other, and the shared inflater's buffer stays within the largest limit + one chunk.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "ws/deflate.hpp"
#include "ws/frame.hpp"
#include "ws/utf8.hpp"

namespace {

using odin::ws::FrameHandler;
using odin::ws::MessageInflater;
using odin::ws::MessageReader;

constexpr uint32_t kLimits[] = {0, 1, 2, 16, 125, 126, 127, 1000, 65535, 65536, 1 << 20};

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) violated(what);
}

// What the handler does besides recording (bits of the mode).
constexpr unsigned kStopSometimes = 1;  // return false on every third event
constexpr unsigned kRelease = 2;        // call release_buffers() first thing in every callback

// Records what the reader delivers, checking each event as it comes.
class Recorder : public FrameHandler {
 public:
  Recorder(uint32_t limit, unsigned mode, MessageReader& reader)
      : limit_(limit), mode_(mode), reader_(reader) {}

  // Called before each feed(): events may come again.
  void new_feed() { stopped_ = false; }

  bool on_text(std::string_view message) override {
    event();
    check(!closed_, "text after close");
    check(message.size() <= limit_, "text message over the limit");
    check(odin::ws::is_valid_utf8(message), "text message is not valid UTF-8");
    // The incremental validator, fed in uneven pieces, must agree.
    odin::ws::Utf8Validator v;
    for (size_t at = 0, step = 1; at < message.size(); at += step, step = step * 2 + 1)
      check(v.feed(message.substr(at, step)), "incremental UTF-8 validator rejects a message");
    check(v.complete(), "incremental UTF-8 validator: message ends inside a character");
    log_.push_back('T');
    log_.append(message);
    log_.push_back('\0');
    return go_on();
  }
  bool on_ping(std::string_view payload) override { return control('P', payload); }
  bool on_pong(std::string_view payload) override { return control('O', payload); }
  void on_close(uint16_t code, std::string_view reason) override {
    event();
    check(!closed_, "second close");
    check(code == odin::ws::close_code::kNoStatus || odin::ws::is_valid_close_code(code),
          "close with an invalid code");
    check(reason.size() <= odin::ws::kMaxControlPayload - 2, "close reason too long");
    check(code != odin::ws::close_code::kNoStatus || reason.empty(), "reason without a code");
    check(odin::ws::is_valid_utf8(reason), "close reason is not valid UTF-8");
    closed_ = true;
    log_.push_back('C');
    log_.append(std::to_string(code)).push_back(':');
    log_.append(reason);
  }

  const std::string& log() const { return log_; }
  bool closed() const { return closed_; }

 private:
  // Every callback starts here; the payload is read after it, so a release that freed it shows.
  void event() {
    check(!stopped_, "event after the handler said stop in the same feed()");
    if (mode_ & kRelease) reader_.release_buffers();
  }
  bool go_on() {
    if ((mode_ & kStopSometimes) && ++events_ % 3 == 0) stopped_ = true;
    return !stopped_;
  }
  bool control(char kind, std::string_view payload) {
    event();
    check(!closed_, "control frame after close");
    check(payload.size() <= odin::ws::kMaxControlPayload, "control payload over 125 bytes");
    check(payload.size() <= limit_, "control payload over the limit");
    log_.push_back(kind);
    log_.append(payload);
    log_.push_back('\0');
    return go_on();
  }

  uint32_t limit_;
  unsigned mode_;
  MessageReader& reader_;
  unsigned events_ = 0;
  bool stopped_ = false;  // the handler returned false during this feed()
  bool closed_ = false;
  std::string log_;
};

// Feeds `stream` in reads whose sizes come from `seed` (0: all at once), to a reader that
// accepts compressed messages when given an inflater; returns the event log with the final
// error, if any, appended.
std::string run(std::string stream, uint32_t limit, unsigned mode, uint8_t seed,
                MessageInflater* inflater) {
  MessageReader reader(limit);
  reader.accept_compressed(inflater);
  Recorder recorder(limit, mode, reader);
  std::optional<odin::ws::ReadError> error;
  uint32_t state = seed;
  size_t at = 0;
  while (at < stream.size()) {
    size_t n = stream.size() - at;
    if (seed != 0) {
      state = state * 1103515245u + 12345u;
      // Mostly short reads (headers cut anywhere), sometimes long ones.
      const uint32_t r = state >> 16;
      n = std::min<size_t>(n, (r & 0x100) ? (r & 0x3FF) + 1 : (r & 0xF) + 1);
    }
    std::span<char> bytes(stream.data() + at, n);
    at += n;
    recorder.new_feed();
    if (error || recorder.closed()) {
      // Ignored from now on: no event, no error.
      const size_t before = recorder.log().size();
      check(!reader.feed(bytes, recorder), "error after an error or a close");
      check(recorder.log().size() == before, "event after an error or a close");
      continue;
    }
    error = reader.feed(bytes, recorder);
    // A control frame split inside a fragmented message is the one thing held past the limit.
    check(reader.heap_bytes() <= size_t{limit} + odin::ws::kMaxControlPayload,
          "reader holds more memory than the limit allows");
    check(reader.buffered_bytes() <= size_t{limit} + odin::ws::kMaxControlPayload + 14,
          "reader buffers more than the limit allows");
    if (inflater) {
      check(inflater->output_capacity() <=
                size_t{kLimits[std::size(kLimits) - 1]} + MessageInflater::kChunk,
            "inflater buffer past the limit");
    }
    if (error) {
      check(error->close_code == odin::ws::close_code::kProtocolError ||
                error->close_code == odin::ws::close_code::kUnsupportedData ||
                error->close_code == odin::ws::close_code::kInvalidPayload ||
                error->close_code == odin::ws::close_code::kTooBig,
            "unexpected close code for a read error");
      check(!error->reason.empty(), "read error without a reason");
      check(reader.heap_bytes() == 0, "reader keeps memory after an error");
    }
    if (recorder.closed()) check(reader.heap_bytes() == 0, "reader keeps memory after a close");
  }
  std::string log = recorder.log();
  if (error) {
    log.append("E").append(std::to_string(error->close_code)).push_back(':');
    log.append(error->reason);
  }
  reader.release_buffers();
  check(reader.heap_bytes() == 0, "release_buffers() left memory");
  return log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint32_t limit = kLimits[data[0] % std::size(kLimits)];
  const unsigned mode = data[0] / std::size(kLimits) % 4;
  const uint8_t seed = data[1];
  const std::string stream(reinterpret_cast<const char*>(data) + 2, size - 2);
  static MessageInflater inflater;
  std::string plain;
  for (MessageInflater* with : {static_cast<MessageInflater*>(nullptr), &inflater}) {
    const std::string whole = run(stream, limit, mode, 0, with);
    if (!with) {
      plain = whole;
    } else if (!plain.ends_with("E1002:reserved bits set") && whole != plain) {
      std::fprintf(stderr, "plain:\n%s\naccepting compression:\n%s\n", plain.c_str(),
                   whole.c_str());
      violated("accepting compression changes a stream without RSV1");
    }
    if (seed == 0) continue;
    const std::string split = run(stream, limit, mode, seed, with);
    if (!(mode & kStopSometimes) && split != whole) {
      std::fprintf(stderr, "one read:\n%s\nsplit reads:\n%s\n", whole.c_str(), split.c_str());
      violated("split reads change the events");
    }
  }
  return 0;
}
