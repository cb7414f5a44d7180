// One event-loop thread's parts (see worker.hpp).
#include "app/worker.hpp"

namespace odin::app {

namespace {
net::LoopParts with_sweep(net::LoopParts parts, std::function<void(int64_t)> on_sweep) {
  parts.on_sweep = std::move(on_sweep);
  return parts;
}
}  // namespace

Worker::Worker(const ops::Config& config, unsigned index, net::LoopParts loop_parts,
               session::ClientThreadParts client_parts)
    // The sweep runs on the loop thread, which starts only once the Worker is built.
    : loop_(config, index,
            with_sweep(std::move(loop_parts),
                       [this](int64_t now_ms) {
                         clients_.sweep(now_ms);
                         fanout_.sweep();
                         channel_count_.store(static_cast<uint32_t>(index_.channel_count()),
                                              std::memory_order_relaxed);
                       })),
      index_(config.max_channels),
      clients_(loop_, index_, std::move(client_parts)),
      fanout_(loop_, index_, clients_.sessions()) {}

}  // namespace odin::app
