// Batched, vectored output for one event-loop thread. Everything a turn of the loop wants to send
// is appended here as pieces (a per-recipient head plus a referenced shared tail), and flush()
// writes each touched connection once with writev. Only what the kernel refuses is copied, into
// that connection's backlog; idle connections hold no buffers. Pieces are appended message by
// message; flush() regroups them by connection in two sequential passes (a counting sort), so
// writing a connection reads its pieces from one contiguous run instead of chasing links across
// the whole batch (measured: the chase was the gateway's top user-space cost at 1M deliveries/s).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/message.hpp"
#include "net/tls.hpp"

namespace odin::net {

class Connection;

// A connection's unsent bytes. Empty (no heap) for every connection that keeps up.
struct Outbound {
  static constexpr uint32_t kNone = UINT32_MAX;
  std::string backlog;                   // bytes the kernel did not take yet
  std::vector<uint32_t> backlog_frames;  // sizes of the frames (or raw pieces) in backlog
  uint32_t backlog_offset = 0;           // bytes of backlog already written
  uint32_t head_frame_written = 0;       // bytes of the first frame in backlog already written
  uint32_t batch_slot = kNone;           // this connection's place in this turn's batch
  uint64_t batched_bytes = 0;            // bytes appended for it to this turn's batch
  bool in_batch() const { return batch_slot != kNone; }

  size_t backlog_bytes() const { return backlog.size() - backlog_offset; }
  void release();
};

// What flushing one connection did; the connection acts on it (wait for writable, 4008, close).
enum class FlushResult : uint8_t { kDone, kBacklogged, kFailed };

class OutBatch {
 public:
  OutBatch();
  OutBatch(const OutBatch&) = delete;
  OutBatch& operator=(const OutBatch&) = delete;

  // Hot path: a data frame = `head` (copied, small) + `tail` (referenced through `owner`).
  void append_shared(Connection& conn, std::string_view head, const core::MessageRef& owner,
                     std::string_view tail);
  // Anything else (control frames, HTTP responses, replays' heads): copied into the batch arena.
  void append_copy(Connection& conn, std::string_view bytes);
  // Reserves `n` bytes in the arena for the caller to fill, appended as one piece.
  char* append_reserve(Connection& conn, size_t n);

  bool empty() const { return dirty_.empty(); }
  // Writes every connection touched since the last flush, then hands each its FlushResult.
  // Returns the bytes written to sockets.
  uint64_t flush();
  // Writes a connection's backlog when its socket becomes writable again.
  static FlushResult write_backlog(Connection& conn, uint64_t& bytes_written);
  // Drops the pieces of a connection that is being torn down before the next flush.
  void forget(Connection& conn);

  // TLS: where this thread's encrypted output collects, and sending what collected there for
  // `conn` (handshake records, alerts, close_notify) ahead of anything encrypted later.
  TlsSink& tls_sink() { return tls_sink_; }
  FlushResult send_tls_output(Connection& conn, uint64_t& bytes_written);

 private:
  // What writev sends for one piece: a head, and a tail that may be empty.
  struct Span {
    const char* head;
    const char* tail;
    uint32_t head_len;
    uint32_t tail_len;
  };
  struct Piece {
    Span span;
    uint32_t slot;  // the connection's batch slot
  };
  char* arena_alloc(size_t n);
  uint32_t slot_of(Connection& conn, size_t bytes);
  FlushResult flush_one(Connection& conn, std::span<const Span> spans, uint64_t& bytes_written);
  FlushResult flush_tls(Connection& conn, TlsStream& tls, std::span<const Span> spans,
                        uint64_t& bytes_written);
  void group_by_connection(size_t slots);
  void reset_arena();

  std::vector<Piece> pieces_;
  // Keeps referenced tails alive until the flush: one reference per run of pieces that share a
  // message (the fan-out appends a message to all its recipients in a row), not one per piece.
  std::vector<core::MessageRef> owners_;
  std::vector<Connection*> dirty_;     // by slot; null once forgotten
  std::vector<Span> grouped_;          // pieces_ regrouped by connection for flush
  std::vector<uint32_t> group_begin_;  // per slot, then one past the end
  std::vector<uint32_t> group_cursor_;
  std::vector<Connection*> flushing_;  // the batch being written (kept for its capacity)
  std::vector<FlushResult> results_;
  std::vector<std::unique_ptr<char[]>> chunks_;
  size_t chunk_index_ = 0;
  size_t chunk_used_ = 0;
  std::vector<std::unique_ptr<char[]>> oversized_;
  std::vector<iovec> iov_;
  TlsSink tls_sink_;
  std::string tls_plain_;  // a TLS connection's pieces gathered into records' worth of plaintext
};

}  // namespace odin::net
