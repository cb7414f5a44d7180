// What enters the fan-out and what a publish comes back with: the vocabulary brokers, the hub and
// POST /publish share, without any of them including another.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace odin::core {

// What a broker hands to the hub: a channel (already validated), a type and a payload.
struct IngestItem {
  std::string_view channel;
  std::string_view type;
  std::string_view data;
  bool data_is_json = true;
  uint64_t pos = 0;  // JetStream stream sequence (0: none)
};

// The outcome of a publish: how many messages the broker accepted, and why it stopped short.
struct PublishOutcome {
  size_t published = 0;
  std::string error;  // empty when all were accepted
};
using PublishDone = std::function<void(PublishOutcome)>;

}  // namespace odin::core
