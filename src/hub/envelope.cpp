// Envelope encoding (see envelope.hpp). Key order is part of the contract: seq, (pos,) ts, type,
// channel, data.
#include "hub/envelope.hpp"

#include <cstring>

#include "ops/json.hpp"
#include "ws/frame.hpp"

namespace odin {

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

size_t encode_data_prefix(char* out, uint64_t seq, size_t tail_size) {
  static constexpr std::string_view kSeqKey = "{\"seq\":";
  char digits[20];
  char* digits_end = json::write_uint(digits, seq);
  const size_t digit_count = static_cast<size_t>(digits_end - digits);
  const size_t payload = kSeqKey.size() + digit_count + 1 + tail_size;
  size_t n = ws::encode_frame_header(out, ws::Opcode::kText, payload);
  std::memcpy(out + n, kSeqKey.data(), kSeqKey.size());
  n += kSeqKey.size();
  std::memcpy(out + n, digits, digit_count);
  n += digit_count;
  out[n++] = ',';
  return n;
}

}  // namespace odin
