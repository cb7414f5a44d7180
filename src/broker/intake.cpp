// The NATS intake's decisions (see intake.hpp).
#include "broker/intake.hpp"

#include <simdjson.h>

#include <algorithm>

#include "http/publish.hpp"
#include "hub/channel_name.hpp"
#include "ws/utf8.hpp"

namespace odin {

const char* intake_reject_name(IntakeReject reason) {
  switch (reason) {
    case IntakeReject::kBadSubject:
      return "bad_subject";
    case IntakeReject::kBadType:
      return "bad_type";
    case IntakeReject::kOversized:
      return "oversized";
    case IntakeReject::kInvalidUtf8:
      return "invalid_utf8";
    case IntakeReject::kDuplicate:
      return "duplicate";
    case IntakeReject::kCount:
      break;
  }
  return "unknown";
}

IntakeFilter::IntakeFilter(std::string subject_prefix, size_t max_payload_bytes)
    : prefix_(std::move(subject_prefix)),
      max_payload_bytes_(max_payload_bytes),
      parser_(std::make_unique<simdjson::dom::parser>()) {}

IntakeFilter::~IntakeFilter() = default;

std::optional<IntakeReject> IntakeFilter::check(std::string_view subject,
                                                const std::string_view* type,
                                                std::string_view payload, IngestItem& item) {
  if (!subject.starts_with(prefix_)) return IntakeReject::kBadSubject;
  const std::string_view channel = subject.substr(prefix_.size());
  if (!is_valid_channel_name(channel)) return IntakeReject::kBadSubject;
  std::string_view message_type = "message";
  if (type) {
    if (type->empty() || type->size() > kMaxTypeLength || !ws::is_valid_utf8(*type)) {
      return IntakeReject::kBadType;
    }
    message_type = *type;
  }
  if (payload.size() > max_payload_bytes_) return IntakeReject::kOversized;
  if (!ws::is_valid_utf8(payload)) return IntakeReject::kInvalidUtf8;
  // The envelope embeds valid JSON as it is; a padded copy is made inside the parser.
  simdjson::dom::element ignored;
  const bool is_json =
      !payload.empty() && !parser_->parse(payload.data(), payload.size()).get(ignored);
  item = IngestItem{channel, message_type, payload, is_json};
  return std::nullopt;
}

bool StreamDedupe::first_delivery(uint64_t stream_sequence) {
  if (!seen_.insert(stream_sequence).second) return false;
  order_.push_back(stream_sequence);
  if (order_.size() > window_) {
    seen_.erase(order_.front());
    order_.pop_front();
  }
  return true;
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

}  // namespace odin
