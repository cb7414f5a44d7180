// The NATS intake's decisions (see intake.hpp).
#include "broker/intake.hpp"

#include <simdjson.h>

#include <algorithm>
#include <iterator>
#include <random>

#include "core/channel_name.hpp"
#include "core/clock.hpp"
#include "core/publish.hpp"
#include "guard/resource_monitor.hpp"
#include "ops/config.hpp"
#include "spdlog/spdlog.h"
#include "ws/utf8.hpp"

namespace odin::broker {

namespace {
constexpr int64_t kRejectLogEveryMs = 10'000;
// JetStream held back by the fan-out: how long to wait before looking at the queues again.
constexpr int64_t kFanoutBehindWaitMs = 5;
}  // namespace

IntakeFilter::IntakeFilter(std::string subject_prefix, size_t max_payload_bytes)
    : prefix_(std::move(subject_prefix)),
      max_payload_bytes_(max_payload_bytes),
      parser_(std::make_unique<simdjson::dom::parser>()) {}

IntakeFilter::~IntakeFilter() = default;

std::optional<ops::IntakeReject> IntakeFilter::check(std::string_view subject,
                                                     const std::string_view* type,
                                                     std::string_view payload,
                                                     core::IngestItem& item) {
  if (!subject.starts_with(prefix_)) return ops::IntakeReject::kBadSubject;
  const std::string_view channel = subject.substr(prefix_.size());
  if (!core::is_valid_channel_name(channel)) return ops::IntakeReject::kBadSubject;
  std::string_view message_type = "message";
  if (type) {
    if (type->empty() || type->size() > core::kMaxTypeLength || !ws::is_valid_utf8(*type)) {
      return ops::IntakeReject::kBadType;
    }
    message_type = *type;
  }
  if (payload.size() > max_payload_bytes_) return ops::IntakeReject::kOversized;
  if (!ws::is_valid_utf8(payload)) return ops::IntakeReject::kInvalidUtf8;
  // The envelope embeds valid JSON as it is; a padded copy is made inside the parser.
  simdjson::dom::element ignored;
  const bool is_json =
      !payload.empty() && !parser_->parse(payload.data(), payload.size()).get(ignored);
  item = core::IngestItem{channel, message_type, payload, is_json};
  return std::nullopt;
}

bool StreamDedupe::first_delivery(uint64_t stream_sequence) {
  if (stream_sequence > last_) {
    last_ = stream_sequence;
    return true;
  }
  auto gap = open_.upper_bound(stream_sequence);
  if (gap == open_.begin()) return false;
  --gap;
  const auto [first, through] = *gap;
  if (stream_sequence > through) return false;
  open_.erase(gap);
  if (first < stream_sequence) open_.emplace(first, stream_sequence - 1);
  if (stream_sequence < through) open_.emplace(stream_sequence + 1, through);
  while (open_.size() > kMaxOpenGaps)
    open_.erase(open_.begin());
  return true;
}

void StreamDedupe::not_handed_over(uint64_t from, uint64_t to) {
  to = std::min(to, last_);
  if (from == 0 || from > to) return;
  // Gaps are opened in stream order, each after the previous one: merge with a neighbour below.
  if (!open_.empty()) {
    auto below = std::prev(open_.end());
    if (below->first <= from && below->second + 1 >= from) {
      below->second = std::max(below->second, to);
      return;
    }
  }
  open_.emplace(from, to);
  while (open_.size() > kMaxOpenGaps)
    open_.erase(open_.begin());
}

void StreamDedupe::reset(uint64_t last) {
  last_ = last;
  open_.clear();
}

PauseSwitch::PauseSwitch(double threshold_percent)
    : pause_above_(threshold_percent),
      resume_below_(threshold_percent - std::min(10.0, threshold_percent * 0.2)) {}

bool PauseSwitch::update(double cpu_percent) {
  if (!paused_ && cpu_percent > pause_above_) {
    paused_ = true;
    return true;
  }
  if (paused_ && cpu_percent < resume_below_) {
    paused_ = false;
    return true;
  }
  return false;
}

IntakeGovernor::IntakeGovernor(const ops::Config& config, const guard::ResourceMonitor& resources,
                               ops::BrokerCounters& counters, std::string_view broker_name,
                               hub::Hub* hub)
    : resources_(resources),
      counters_(counters),
      broker_name_(broker_name),
      hub_(hub),
      fanout_high_water_(config.fanout_queue_bytes),
      holds_for_fanout_(config.broker == ops::BrokerKind::kJetStream),
      behind_action_(holds_for_fanout_ ? "stops pulling (the stream keeps the messages)"
                     : config.broker == ops::BrokerKind::kNats ||
                             config.broker == ops::BrokerKind::kRedis
                         ? "drops messages (counted as fanout_behind)"
                         : "refuses publishes (POST /publish answers 503)"),
      pause_threshold_(config.cpu_pause_threshold),
      pause_(config.cpu_pause_threshold),
      intake_rate_(static_cast<double>(config.max_nats_rate)),
      broadcast_rate_(static_cast<double>(config.max_broadcast_rate)) {}

bool IntakeGovernor::paused_for_cpu() {
  if (pause_.update(resources_.cpu_percent())) {
    counters_.paused = pause_.paused();
    if (pause_.paused()) {
      counters_.pauses.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("CPU {:.1f}% above WS_CPU_PAUSE_THRESHOLD {:.1f}%: broker intake paused",
                   resources_.cpu_percent(), pause_threshold_);
    } else {
      spdlog::info("CPU {:.1f}% below {:.1f}%: broker intake resumed", resources_.cpu_percent(),
                   pause_.resume_below());
    }
  }
  return pause_.paused();
}

size_t IntakeGovernor::take(size_t wanted, int64_t& wait_ms) {
  if (holds_for_fanout_ && fanout_behind()) {
    wait_ms = kFanoutBehindWaitMs;
    return 0;
  }
  const int64_t now = core::steady_ns();
  const size_t intake = intake_rate_.take(wanted, now);
  const size_t allowed = broadcast_rate_.take(intake, now);
  intake_rate_.give_back(intake - allowed);
  if (allowed == 0) {
    const int64_t wait = std::max(intake_rate_.wait_ns(now), broadcast_rate_.wait_ns(now));
    wait_ms = std::clamp<int64_t>(wait / 1'000'000, 1, 100);
  }
  return allowed;
}

bool IntakeGovernor::fanout_behind() {
  if (!hub_) return false;
  const uint64_t backlog = hub_->backlog_bytes();
  // Hysteresis: resume only at half the mark, so intake does not flap around it.
  const bool behind =
      fanout_behind_ ? backlog > fanout_high_water_ / 2 : backlog > fanout_high_water_;
  if (behind == fanout_behind_) return behind;
  fanout_behind_ = behind;
  counters_.fanout_behind = behind;
  if (!behind) {
    spdlog::debug("the fan-out caught up ({} bytes queued): {} intake resumes", backlog,
                  broker_name_);
    return false;
  }
  counters_.fanout_behind_episodes.fetch_add(1, std::memory_order_relaxed);
  // Under sustained overload this may start many times a second: one line per 10 s at most.
  ++behind_since_log_;
  const int64_t now = core::steady_ns();
  if (last_behind_log_ns_ != 0 && now - last_behind_log_ns_ < kRejectLogEveryMs * 1'000'000) {
    return true;
  }
  spdlog::warn(
      "an event-loop thread fell behind ({} time(s) since the last such line): {} bytes queued "
      "for its fan-out, above WS_FANOUT_QUEUE_BYTES {}: {} intake {} until it is below half",
      behind_since_log_, backlog, fanout_high_water_, broker_name_, behind_action_);
  behind_since_log_ = 0;
  last_behind_log_ns_ = now;
  return behind;
}

void IntakeGovernor::ingest(std::vector<core::IngestItem>& items) {
  if (items.empty()) return;
  if (!holds_for_fanout_ && fanout_behind()) {
    for (const core::IngestItem& item : items)
      reject(ops::IntakeReject::kFanoutBehind, item.channel);
    items.clear();
    return;
  }
  if (hub_) hub_->ingest(items);
}

void IntakeGovernor::reject(ops::IntakeReject reason, std::string_view source) {
  counters_.reject(reason);
  if (reason == ops::IntakeReject::kDuplicate) return;  // expected after a reconnect: counted only
  RejectLog& log = reject_log_[static_cast<size_t>(reason)];
  ++log.since_last;
  const int64_t now = core::mono_ms();
  if (log.last_ms != 0 && now - log.last_ms < kRejectLogEveryMs) return;
  spdlog::warn(
      "dropped {} message(s) from {}: {}{} (latest '{}')", log.since_last, broker_name_,
      ops::intake_reject_name(reason),
      reason == ops::IntakeReject::kOversized ? " (payload over WS_MAX_PAYLOAD_BYTES)" : "",
      source.substr(0, 200));
  log.since_last = 0;
  log.last_ms = now;
}

int64_t reconnect_delay_ms(int attempts) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  const int64_t base = std::min<int64_t>(5000, int64_t{100} << std::min(attempts, 6));
  return base + static_cast<int64_t>(rng() % static_cast<unsigned>(base / 5 + 1));
}

}  // namespace odin::broker
