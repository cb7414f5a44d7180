// Envelope encoding (see envelope.hpp). Key order is part of the contract: seq, (pos,) ts, type,
// channel, data.
#include "core/envelope.hpp"

#include <cstring>

#include "core/json.hpp"
#include "ws/frame.hpp"

namespace odin::core {

void encode_envelope_tail(std::string& out, uint64_t pos, int64_t ts_ms, std::string_view type,
                          std::string_view channel, std::string_view data, bool data_is_json) {
  if (pos != 0) {
    out.append("\"pos\":");
    json::append_uint(out, pos);
    out.push_back(',');
  }
  out.append("\"ts\":");
  json::append_int(out, ts_ms);
  out.append(",\"type\":");
  json::append_string(out, type);
  out.append(",\"channel\":");
  json::append_string(out, channel);
  out.append(",\"data\":");
  if (data_is_json) {
    out.append(data);
  } else {
    json::append_string(out, data);
  }
  out.push_back('}');
}

namespace {

// `{"seq":N,` and `"conflated":K,` (K not 0), written after the frame header or alone.
struct DataKeys {
  static constexpr std::string_view kSeqKey = "{\"seq\":";
  static constexpr std::string_view kConflatedKey = "\"conflated\":";
  char seq_digits[json::kMaxUintDigits];
  char conflated_digits[json::kMaxUintDigits];
  size_t seq_size;
  size_t conflated_size = 0;

  // The numbers first, so the frame header can say the payload's size.
  DataKeys(uint64_t seq, uint32_t conflated)
      : seq_size(static_cast<size_t>(json::write_uint(seq_digits, seq) - seq_digits)) {
    if (conflated != 0) [[unlikely]] {
      conflated_size =
          static_cast<size_t>(json::write_uint(conflated_digits, conflated) - conflated_digits);
    }
  }
  size_t size() const {
    return kSeqKey.size() + seq_size + 1 +
           (conflated_size ? kConflatedKey.size() + conflated_size + 1 : 0);
  }
  size_t write(char* out) const {
    size_t n = 0;
    std::memcpy(out + n, kSeqKey.data(), kSeqKey.size());
    n += kSeqKey.size();
    std::memcpy(out + n, seq_digits, seq_size);
    n += seq_size;
    out[n++] = ',';
    if (conflated_size != 0) {
      std::memcpy(out + n, kConflatedKey.data(), kConflatedKey.size());
      n += kConflatedKey.size();
      std::memcpy(out + n, conflated_digits, conflated_size);
      n += conflated_size;
      out[n++] = ',';
    }
    return n;
  }
};

}  // namespace

size_t encode_data_prefix(char* out, uint64_t seq, uint32_t conflated, size_t tail_size) {
  const DataKeys keys(seq, conflated);
  const size_t n = ws::encode_frame_header(out, ws::Opcode::kText, keys.size() + tail_size);
  return n + keys.write(out + n);
}

size_t encode_data_keys(char* out, uint64_t seq, uint32_t conflated) {
  return DataKeys(seq, conflated).write(out);
}

std::shared_ptr<Message> encode_message(const IngestItem& item, int64_t ts_ms,
                                        int64_t ingest_steady_ns) {
  auto message = std::make_shared<Message>();
  message->channel = std::string(item.channel);
  message->tail.reserve(item.data.size() + item.channel.size() + item.type.size() + 64);
  encode_envelope_tail(message->tail, item.pos, ts_ms, item.type, item.channel, item.data,
                       item.data_is_json);
  message->ingest_steady_ns = ingest_steady_ns;
  message->ts_ms = ts_ms;
  message->pos = item.pos;
  return message;
}

}  // namespace odin::core
