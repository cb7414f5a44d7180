// Batched vectored output (see out_batch.hpp). This is the end of the fan-out hot path (after
// hub/fanout.cpp and Session::deliver in session/session.hpp): one writev per touched connection
// per loop turn, whatever number of messages it carries; then each connection hears how it went
// (Connection::on_flushed, and through it its ConnectionHandler).
#include "net/out_batch.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "net/connection.hpp"

namespace odin::net {

namespace {
constexpr size_t kChunkBytes = 64 * 1024;
// Arena chunks kept between turns; more than this is returned to the allocator after a burst.
constexpr size_t kChunksKept = 16;
constexpr int kMaxIov = IOV_MAX;
// Plaintext handed to OpenSSL per call: a few full records, so small frames share records
// (a record costs 22+ bytes and one AEAD call) without holding much memory.
constexpr size_t kTlsPlainChunk = 4 * 16384;
}  // namespace

void Outbound::release() {
  std::string().swap(backlog);
  std::vector<uint32_t>().swap(backlog_frames);
  backlog_offset = 0;
  head_frame_written = 0;
}

OutBatch::OutBatch() {
  iov_.reserve(kMaxIov);
}

char* OutBatch::arena_alloc(size_t n) {
  if (n > kChunkBytes / 4) {
    oversized_.push_back(std::make_unique<char[]>(n));
    return oversized_.back().get();
  }
  if (chunk_index_ < chunks_.size() && chunk_used_ + n > kChunkBytes) {
    ++chunk_index_;
    chunk_used_ = 0;
  }
  if (chunk_index_ == chunks_.size()) chunks_.push_back(std::make_unique<char[]>(kChunkBytes));
  char* p = chunks_[chunk_index_].get() + chunk_used_;
  chunk_used_ += n;
  return p;
}

void OutBatch::reset_arena() {
  chunk_index_ = 0;
  chunk_used_ = 0;
  if (chunks_.size() > kChunksKept) chunks_.resize(kChunksKept);
  oversized_.clear();
}

uint32_t OutBatch::slot_of(Connection& conn, size_t bytes) {
  Outbound& out = conn.outbound();
  if (!out.in_batch()) {
    out.batch_slot = static_cast<uint32_t>(dirty_.size());
    out.batched_bytes = 0;
    dirty_.push_back(&conn);
  }
  out.batched_bytes += bytes;
  return out.batch_slot;
}

void OutBatch::append_shared(Connection& conn, std::string_view head, const core::MessageRef& owner,
                             std::string_view tail) {
  char* head_copy = arena_alloc(head.size());
  std::memcpy(head_copy, head.data(), head.size());
  if (owners_.empty() || owners_.back() != owner) owners_.push_back(owner);
  pieces_.push_back(Piece{{head_copy, tail.data(), static_cast<uint32_t>(head.size()),
                           static_cast<uint32_t>(tail.size())},
                          slot_of(conn, head.size() + tail.size())});
}

char* OutBatch::append_reserve(Connection& conn, size_t n) {
  char* p = arena_alloc(n);
  pieces_.push_back(Piece{{p, nullptr, static_cast<uint32_t>(n), 0}, slot_of(conn, n)});
  return p;
}

void OutBatch::append_copy(Connection& conn, std::string_view bytes) {
  std::memcpy(append_reserve(conn, bytes.size()), bytes.data(), bytes.size());
}

void OutBatch::forget(Connection& conn) {
  Outbound& out = conn.outbound();
  if (!out.in_batch()) return;
  dirty_[out.batch_slot] = nullptr;  // its pieces stay in the batch and are skipped
  out.batch_slot = Outbound::kNone;
}

namespace {

// Advances the backlog past `n` written bytes, keeping frame sizes in step.
void consume_backlog(Outbound& out, size_t n) {
  out.backlog_offset += static_cast<uint32_t>(n);
  size_t frames_done = 0;
  size_t left = n + out.head_frame_written;
  while (frames_done < out.backlog_frames.size() && left >= out.backlog_frames[frames_done]) {
    left -= out.backlog_frames[frames_done];
    ++frames_done;
  }
  out.backlog_frames.erase(out.backlog_frames.begin(),
                           out.backlog_frames.begin() + static_cast<ptrdiff_t>(frames_done));
  out.head_frame_written = static_cast<uint32_t>(left);
  if (out.backlog_offset == out.backlog.size()) {
    out.release();
  } else if (out.backlog_offset > out.backlog.size() / 2) {
    out.backlog.erase(0, out.backlog_offset);
    out.backlog_offset = 0;
  }
}

// writev until done or the kernel refuses; returns bytes written or -1 on a hard error.
ssize_t write_all(int fd, iovec* iov, int count) {
  size_t written = 0;
  while (count > 0) {
    ssize_t n = ::writev(fd, iov, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return -1;
    }
    written += static_cast<size_t>(n);
    size_t left = static_cast<size_t>(n);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count == 0) break;
    iov->iov_base = static_cast<char*>(iov->iov_base) + left;
    iov->iov_len -= left;
    if (left > 0 || n == 0) break;  // a short write: the socket buffer is full
  }
  return static_cast<ssize_t>(written);
}

}  // namespace

FlushResult OutBatch::write_backlog(Connection& conn, uint64_t& bytes_written) {
  Outbound& out = conn.outbound();
  if (out.backlog_bytes() == 0) return FlushResult::kDone;
  iovec iov{out.backlog.data() + out.backlog_offset, out.backlog_bytes()};
  ssize_t n = write_all(conn.fd(), &iov, 1);
  if (n < 0) return FlushResult::kFailed;
  bytes_written += static_cast<uint64_t>(n);
  consume_backlog(out, static_cast<size_t>(n));
  return out.backlog_bytes() == 0 ? FlushResult::kDone : FlushResult::kBacklogged;
}

namespace {

// Ciphertext is written at once when nothing older waits, and otherwise (or for what the socket
// refuses) goes to the backlog as one unit: records cannot be dropped or reordered later.
FlushResult send_ciphertext(Connection& conn, std::string_view bytes, uint64_t& bytes_written) {
  Outbound& out = conn.outbound();
  if (bytes.empty())
    return out.backlog_bytes() == 0 ? FlushResult::kDone : FlushResult::kBacklogged;
  if (out.backlog_bytes() == 0) {
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    const ssize_t n = write_all(conn.fd(), &iov, 1);
    if (n < 0) return FlushResult::kFailed;
    bytes_written += static_cast<uint64_t>(n);
    bytes.remove_prefix(static_cast<size_t>(n));
    if (bytes.empty()) return FlushResult::kDone;
  }
  const bool older_waiting = out.backlog_bytes() > 0;
  out.backlog.append(bytes.data(), bytes.size());
  out.backlog_frames.push_back(static_cast<uint32_t>(bytes.size()));
  if (older_waiting) return OutBatch::write_backlog(conn, bytes_written);
  return FlushResult::kBacklogged;
}

}  // namespace

FlushResult OutBatch::send_tls_output(Connection& conn, uint64_t& bytes_written) {
  const FlushResult result = send_ciphertext(conn, tls_sink_.pending(), bytes_written);
  tls_sink_.clear();
  return result;
}

FlushResult OutBatch::flush_tls(Connection& conn, TlsStream& tls, std::span<const Span> spans,
                                uint64_t& bytes_written) {
  tls_plain_.clear();
  bool ok = true;
  for (const Span& p : spans) {
    tls_plain_.append(p.head, p.head_len);
    if (p.tail_len) tls_plain_.append(p.tail, p.tail_len);
    if (tls_plain_.size() >= kTlsPlainChunk) {
      ok = ok && tls.write(tls_plain_, tls_sink_);
      tls_plain_.clear();
    }
  }
  if (!tls_plain_.empty()) ok = ok && tls.write(tls_plain_, tls_sink_);
  if (!ok) {
    tls_sink_.clear();
    return FlushResult::kFailed;
  }
  return send_tls_output(conn, bytes_written);
}

FlushResult OutBatch::flush_one(Connection& conn, std::span<const Span> spans,
                                uint64_t& bytes_written) {
  if (TlsStream* tls = conn.tls()) return flush_tls(conn, *tls, spans, bytes_written);
  Outbound& out = conn.outbound();
  const int fd = conn.fd();
  size_t next = 0;
  bool blocked = false;

  // Backlog first: it is older than anything in this batch.
  if (out.backlog_bytes() > 0) {
    FlushResult r = write_backlog(conn, bytes_written);
    if (r == FlushResult::kFailed) return r;
    blocked = r == FlushResult::kBacklogged;
  }

  while (next < spans.size() && !blocked) {
    iov_.clear();
    size_t end = next;
    size_t total = 0;
    while (end < spans.size() && iov_.size() + 2 <= static_cast<size_t>(kMaxIov)) {
      const Span& p = spans[end];
      iov_.push_back({const_cast<char*>(p.head), p.head_len});
      total += p.head_len;
      if (p.tail_len) {
        iov_.push_back({const_cast<char*>(p.tail), p.tail_len});
        total += p.tail_len;
      }
      ++end;
    }
    ssize_t n = write_all(fd, iov_.data(), static_cast<int>(iov_.size()));
    if (n < 0) return FlushResult::kFailed;
    bytes_written += static_cast<uint64_t>(n);
    if (static_cast<size_t>(n) == total) {
      next = end;
      continue;
    }
    // Short write: skip what went out, then fall through to copy the rest into the backlog.
    size_t skip = static_cast<size_t>(n);
    while (skip > 0) {
      const Span& p = spans[next];
      const size_t size = size_t{p.head_len} + p.tail_len;
      if (skip >= size) {
        skip -= size;
        ++next;
        continue;
      }
      // Partly written piece: its rest opens the backlog, recorded as a frame already begun.
      out.backlog_frames.push_back(static_cast<uint32_t>(size));
      out.head_frame_written = static_cast<uint32_t>(skip);
      if (skip < p.head_len) {
        out.backlog.append(p.head + skip, p.head_len - skip);
        out.backlog.append(p.tail, p.tail_len);
      } else {
        out.backlog.append(p.tail + (skip - p.head_len), p.tail_len - (skip - p.head_len));
      }
      ++next;
      skip = 0;
    }
    blocked = true;
  }

  // Whatever the socket did not take waits in the backlog (the slow path).
  for (; next < spans.size(); ++next) {
    const Span& p = spans[next];
    out.backlog.append(p.head, p.head_len);
    if (p.tail_len) out.backlog.append(p.tail, p.tail_len);
    out.backlog_frames.push_back(p.head_len + p.tail_len);
  }
  return out.backlog_bytes() == 0 ? FlushResult::kDone : FlushResult::kBacklogged;
}

void OutBatch::group_by_connection(size_t slots) {
  group_begin_.assign(slots + 1, 0);
  for (const Piece& p : pieces_)
    ++group_begin_[p.slot + 1];
  for (size_t i = 1; i <= slots; ++i)
    group_begin_[i] += group_begin_[i - 1];
  group_cursor_.assign(group_begin_.begin(), group_begin_.end() - 1);
  grouped_.resize(pieces_.size());
  for (const Piece& p : pieces_)
    grouped_[group_cursor_[p.slot]++] = p.span;
}

uint64_t OutBatch::flush() {
  uint64_t bytes_written = 0;
  // Connections may append again (a close frame, say) while we report results: they go into the
  // next batch, so take this one's list first.
  std::vector<Connection*>& work = flushing_;
  work.swap(dirty_);
  group_by_connection(work.size());
  std::vector<FlushResult>& results = results_;
  results.assign(work.size(), FlushResult::kDone);
  for (size_t slot = 0; slot < work.size(); ++slot) {
    // Warm the next connections' state a few ahead; their pieces are already contiguous.
    if (slot + 4 < work.size() && work[slot + 4]) __builtin_prefetch(&work[slot + 4]->outbound());
    Connection* conn = work[slot];
    if (!conn) continue;  // forgotten (torn down) after it appended
    const std::span<const Span> spans(grouped_.data() + group_begin_[slot],
                                      group_begin_[slot + 1] - group_begin_[slot]);
    results[slot] = flush_one(*conn, spans, bytes_written);
    conn->outbound().batch_slot = Outbound::kNone;
  }
  pieces_.clear();
  owners_.clear();
  reset_arena();
  for (size_t slot = 0; slot < work.size(); ++slot) {
    if (work[slot]) work[slot]->on_flushed(results[slot]);
  }
  work.clear();
  return bytes_written;
}

}  // namespace odin::net
