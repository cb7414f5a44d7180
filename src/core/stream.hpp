// Reading the stream back (JetStream, docs/protocol.md "resume on any instance"): what a restore
// asks for, what it gets, and the interface the session layer reads through without knowing the
// broker behind it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/message.hpp"

namespace odin::core {

// The stored messages of one channel with stream positions in (after_pos, through_pos], read back
// from the stream for a client resuming from another instance.
struct StreamRange {
  std::string channel;
  uint64_t after_pos = 0;
  uint64_t through_pos = 0;
};
struct StreamFetch {
  std::vector<StreamRange> ranges;
  unsigned round = 0;  // reads made for this restore before this one (the history moved on)
  // Filled by the reader: the messages found, encoded like live ones, in stream order per range.
  std::vector<std::shared_ptr<const Message>> messages;
  bool complete = false;  // every range read to its end (within the limit)
  // Set by the caller, from any thread, once nobody waits for the answer (the client hung up): a
  // read not started yet is skipped, one under way stops.
  std::shared_ptr<std::atomic<bool>> abandoned;
};
using StreamFetchDone = std::function<void(std::unique_ptr<StreamFetch>)>;

// Any thread may call every member.
class StreamReader {
 public:
  virtual ~StreamReader() = default;
  // Reads `fetch->ranges` back from the stream, at most `limit` messages in all (more leaves it
  // incomplete), and calls `done` once, on any thread. A reader without a stream answers at once.
  virtual void fetch(std::unique_ptr<StreamFetch> fetch, size_t /*limit*/, StreamFetchDone done) {
    done(std::move(fetch));
  }
  // A place among the read-backs waiting or under way, at most `cap` process-wide; each one
  // taken is given back (release_stream_read) once its fetch is done.
  virtual bool reserve_stream_read(uint32_t cap) = 0;
  virtual void release_stream_read() = 0;
  // The client of a reserved read hung up before it was done.
  virtual void count_abandoned_stream_read() = 0;
};

}  // namespace odin::core
