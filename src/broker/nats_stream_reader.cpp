// Reading the JetStream stream back for resumes (see nats_stream_reader.hpp).
#include "broker/nats_stream_reader.hpp"

#include <openssl/evp.h>
#include <simdjson.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/envelope.hpp"
#include "hub/fanout.hpp"

namespace odin::broker {

namespace {

constexpr int64_t kStreamReadTimeoutMs = 2000;  // one request to the stream

// Standard base64 (the JetStream API's `data` and `hdrs`); false on bad input.
bool base64_decode(std::string_view text, std::string& out) {
  out.assign(text.size() / 4 * 3 + 3, '\0');
  if (text.size() % 4 != 0) return false;
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return false;
  size_t size = static_cast<size_t>(n);
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i)
    --size;  // EVP_DecodeBlock counts the padding as zero bytes
  out.resize(size);
  return true;
}

// The Type header out of a raw NATS header block ("NATS/1.0\r\nType: x\r\n\r\n").
std::optional<std::string_view> type_header(std::string_view block) {
  while (!block.empty()) {
    const size_t end = block.find("\r\n");
    std::string_view line = block.substr(0, end);
    if (line.size() > 5 && (line.substr(0, 5) == "Type:" || line.substr(0, 5) == "type:")) {
      line.remove_prefix(5);
      while (!line.empty() && line.front() == ' ')
        line.remove_prefix(1);
      return line;
    }
    if (end == std::string_view::npos) break;
    block.remove_prefix(end + 2);
  }
  return std::nullopt;
}

// RFC 3339 UTC ("2026-11-23T16:07:08.462745679Z", as JetStream stores a message's time) to
// milliseconds since the epoch; 0 when it cannot be read.
int64_t rfc3339_ms(std::string_view text) {
  std::tm tm{};
  int fraction_digits = 0;
  int64_t fraction = 0;
  if (text.size() < 20 ||
      std::sscanf(std::string(text.substr(0, 19)).c_str(), "%d-%d-%dT%d:%d:%d", &tm.tm_year,
                  &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
    return 0;
  }
  for (size_t i = 20; i < text.size() && text[19] == '.' && std::isdigit(text[i]); ++i) {
    if (fraction_digits < 3) {
      fraction = fraction * 10 + (text[i] - '0');
      ++fraction_digits;
    }
  }
  while (fraction_digits++ < 3)
    fraction *= 10;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return int64_t{timegm(&tm)} * 1000 + fraction;
}

}  // namespace

NatsStreamReader::NatsStreamReader(const ops::Config& config, NatsConnection& nats,
                                   ops::BrokerCounters& counters)
    : config_(config),
      nats_(nats),
      counters_(counters),
      filter_(config.subject_prefix, config.max_payload_bytes),
      parser_(std::make_unique<simdjson::dom::parser>()) {}

NatsStreamReader::~NatsStreamReader() = default;

void NatsStreamReader::fetch(std::unique_ptr<core::StreamFetch> request, size_t limit,
                             core::StreamFetchDone done) {
  // The whole wait counts, the queue included: the client waits for its answer meanwhile.
  const int64_t deadline_ns = core::steady_ns() + ns_of(config_.stream_read_timeout);
  // Shared, because a worker job must be copyable; only the job ever touches it.
  std::shared_ptr<core::StreamFetch> fetch(std::move(request));
  worker_.post([this, fetch, limit, deadline_ns, done = std::move(done)](bool running_now) {
    // Not running: incomplete, the gateway is stopping. Abandoned: nobody waits for it.
    const bool abandoned = fetch->abandoned && fetch->abandoned->load(std::memory_order_relaxed);
    if (running_now && !abandoned) read_stream(*fetch, limit, deadline_ns);
    done(std::make_unique<core::StreamFetch>(std::move(*fetch)));
  });
}

// For each range, the channel's stored messages after `after_pos` up to `through_pos`, one
// $JS.API.STREAM.MSG.GET with `next_by_subj` each (the stream leader answers, so nothing the
// instance already handed over can be missing from it). Stops, incomplete, at `deadline_ns` or
// once the caller abandons it.
void NatsStreamReader::read_stream(core::StreamFetch& fetch, size_t limit, int64_t deadline_ns) {
  const std::string api = "$JS.API.STREAM.MSG.GET." + config_.js_stream_name;
  std::string data;
  std::string headers;
  for (const core::StreamRange& range : fetch.ranges) {
    const std::string subject = config_.subject_prefix + range.channel;
    uint64_t next = range.after_pos + 1;
    while (next <= range.through_pos) {
      if (fetch.abandoned && fetch.abandoned->load(std::memory_order_relaxed)) return;
      const int64_t left_ms = (deadline_ns - core::steady_ns()) / 1'000'000;
      if (left_ms <= 0) {
        counters_.stream_reads_timed_out.fetch_add(1, std::memory_order_relaxed);
        return;  // incomplete: the client has waited long enough
      }
      const std::string body = fmt::format(R"({{"seq":{},"next_by_subj":"{}"}})", next, subject);
      natsMsg* reply = nullptr;
      if (natsConnection_Request(&reply, nats_.get(), api.c_str(), body.data(),
                                 static_cast<int>(body.size()),
                                 std::min(kStreamReadTimeoutMs, left_ms)) != NATS_OK) {
        return;  // incomplete
      }
      std::string_view text(natsMsg_GetData(reply), natsMsg_GetDataLength(reply));
      simdjson::padded_string padded(text);
      natsMsg_Destroy(reply);
      simdjson::dom::element root;
      if (parser_->parse(padded).get(root)) return;
      int64_t code = 0;
      if (!root["error"]["code"].get(code)) {
        if (code == 404) break;  // nothing more on that subject
        return;
      }
      simdjson::dom::element message;
      uint64_t seq = 0;
      std::string_view data64;
      std::string_view time;
      if (root["message"].get(message) || message["seq"].get(seq) || message["data"].get(data64) ||
          seq < next) {
        return;
      }
      if (seq > range.through_pos) break;
      std::string_view hdrs64;
      if (message["hdrs"].get(hdrs64)) hdrs64 = {};
      if (message["time"].get(time)) time = {};
      if (!base64_decode(data64, data) || !base64_decode(hdrs64, headers)) return;
      if (fetch.messages.size() == limit) return;  // more than the caller may take: incomplete
      const std::optional<std::string_view> type = type_header(headers);
      core::IngestItem item;
      if (!filter_.check(subject, type ? &*type : nullptr, data, item)) {
        item.pos = seq;
        const int64_t ts = rfc3339_ms(time);
        fetch.messages.push_back(
            core::encode_message(item, ts != 0 ? ts : core::wall_ms(), core::steady_ns()));
      }  // else: refused at intake too, so never delivered anywhere
      next = seq + 1;
    }
  }
  std::sort(fetch.messages.begin(), fetch.messages.end(),
            [](const auto& a, const auto& b) { return a->pos < b->pos; });
  fetch.complete = true;
}

}  // namespace odin::broker
