// Envelope encoding (PROTOCOL.md "Server to client"): the shared tail is built once per message,
// only the frame header and `{"seq":N,` are written per recipient.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/ingest.hpp"
#include "core/message.hpp"

namespace odin::core {

// Appends `"pos":P,"ts":T,"type":"...","channel":"...","data":D}` ("pos" only when `pos` is not
// 0: JetStream's stream sequence, docs/protocol.md). `data_is_json` false turns the payload into a
// JSON string (PROTOCOL.md: data verbatim when valid JSON, else a string).
void encode_envelope_tail(std::string& out, uint64_t pos, int64_t ts_ms, std::string_view type,
                          std::string_view channel, std::string_view data, bool data_is_json);

// The per-recipient front of a data frame: WebSocket header for the whole payload, then
// `{"seq":N,`, and `"conflated":K,` when K is not 0 (a `latest` subscription skipped K messages
// before this one, docs/protocol.md). `out` needs kMaxDataPrefixBytes. Returns the bytes written.
inline constexpr size_t kMaxDataPrefixBytes = 10 + 7 + 20 + 1 + 12 + 10 + 1;
size_t encode_data_prefix(char* out, uint64_t seq, uint32_t conflated, size_t tail_size);
// The same keys without a frame header (a compressed frame wraps them in a DEFLATE stored
// block, ws/deflate.hpp). `out` needs kMaxDataKeysBytes.
inline constexpr size_t kMaxDataKeysBytes = kMaxDataPrefixBytes - 10;
size_t encode_data_keys(char* out, uint64_t seq, uint32_t conflated);

// Encodes one message: its envelope's shared tail, once. `ts_ms` is the envelope's ts. Mutable
// until the caller shares it, so the hub can add the compressed tail.
std::shared_ptr<Message> encode_message(const IngestItem& item, int64_t ts_ms,
                                        int64_t ingest_steady_ns);

}  // namespace odin::core
