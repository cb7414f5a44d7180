// JetStream intake (see nats_jetstream_intake.hpp). Intake thread only, but for connection_moved.
#include "broker/nats_jetstream_intake.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/clock.hpp"
#include "hub/fanout.hpp"
#include "spdlog/spdlog.h"

namespace odin::broker {

namespace {

constexpr int64_t kPullExpiresNs = int64_t{5} * 1'000'000'000;  // one JetStream pull request
constexpr int64_t kConsumerInactiveNs = int64_t{3600} * 1'000'000'000;  // an hour unused: gone
// A gap in the stream sequence is filled from the stream before later messages go out, up to
// this many messages; a longer one (the instance was away for long) restarts the history.
constexpr uint64_t kMaxGapFill = 10'000;
constexpr int kGapFillAttempts = 3;                      // per message, when NATS does not answer
constexpr int64_t kStreamRemakeDelayNs = 1'000'000'000;  // a stream deleted under us: made again

}  // namespace

JetStreamIntake::JetStreamIntake(const ops::Config& config, NatsConnection& nats, hub::Hub& hub,
                                 ops::BrokerCounters& counters, std::string consumer)
    : config_(config),
      nats_(nats),
      hub_(hub),
      counters_(counters),
      consumer_(std::move(consumer)),
      subject_filter_(config.subject_prefix + ">") {
  counters_.intake_ready = false;  // until the consumer is bound
}

// ---- binding: stream, consumer, pull inbox ------------------------------------------------------

IntakeSource::Readiness JetStreamIntake::prepare(IntakeRunner&) {
  if (!nats_.connected()) return Readiness::kWaiting;
  if (batch_.subscription) return Readiness::kReady;
  return subscribe() ? Readiness::kReady : Readiness::kFailed;
}

int64_t JetStreamIntake::retry_delay_ms(int failures) const {
  return nats_setup_retry_ms(failures);
}

bool JetStreamIntake::subscribe() {
  const int64_t created_before = stream_created_ns_;
  if (!ensure_stream()) return false;
  // Created at another time, or numbered below what we handed over: not the stream we read.
  if (created_before != 0 &&
      (stream_created_ns_ != created_before || stream_last_seq_ < dedupe_.last())) {
    start_over_on_new_stream();
  }
  if (!ensure_consumer()) return false;
  natsInbox* inbox = nullptr;
  natsStatus s = natsInbox_Create(&inbox);
  if (s == NATS_OK) {
    pull_inbox_ = inbox;
    natsInbox_Destroy(inbox);
    s = batch_.subscribe(nats_.get(), pull_inbox_ + ".*");
  }
  if (s != NATS_OK) {
    spdlog::warn("JetStream pull inbox: {}", status_text(s));
    return false;
  }
  pull_subject_ = "$JS.API.CONSUMER.MSG.NEXT." + config_.js_stream_name + "." + consumer_;
  pull_owed_ = 0;
  quiet_polls_ = 0;
  counters_.intake_ready = true;
  bound_before_ = true;
  if (dedupe_.last() == 0) {
    // From here on this instance hands over every stream message (gaps are filled), so its
    // per-channel histories are complete from this point. After a reconnect the gap filling
    // keeps them so.
    dedupe_.reset(consumer_start_);
    hub_.mark_complete_after(consumer_start_);
  }
  spdlog::info("JetStream intake: stream {} ({}), durable pull consumer {}", config_.js_stream_name,
               subject_filter_, consumer_);
  return true;
}

bool JetStreamIntake::ensure_stream() {
  const char* subjects[] = {subject_filter_.c_str()};
  jsStreamConfig stream;
  jsStreamConfig_Init(&stream);
  stream.Name = config_.js_stream_name.c_str();
  stream.Subjects = subjects;
  stream.SubjectsLen = 1;
  stream.MaxAge = ns_of(config_.js_stream_max_age);
  stream.MaxMsgs = config_.js_stream_max_msgs;
  stream.MaxBytes = config_.js_stream_max_bytes;
  stream.Storage = js_FileStorage;
  stream.Replicas = config_.js_stream_replicas;
  jsStreamInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, nats_.js(), stream.Name, nullptr, &jerr);
  const bool exists = s == NATS_OK;
  if (info) jsStreamInfo_Destroy(info);
  info = nullptr;
  if (!exists && s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
    spdlog::warn("JetStream stream {} lookup failed: {}", stream.Name, status_text(s, jerr));
    return false;
  }
  if (exists || !bound_before_) {
    stream_missing_since_ns_ = 0;
  } else if (stream_missing_since_ns_ == 0 ||
             core::steady_ns() - stream_missing_since_ns_ < kStreamRemakeDelayNs) {
    // Gone from under us: whoever deleted it may be making it again, and a stream made at once
    // after its delete can lose its store (nats-server 2.9). Made again after a pause.
    if (stream_missing_since_ns_ == 0) {
      stream_missing_since_ns_ = core::steady_ns();
      spdlog::warn("JetStream stream {} is gone: making it again in {} ms unless it reappears",
                   stream.Name, kStreamRemakeDelayNs / 1'000'000);
    }
    return false;
  }
  jerr = static_cast<jsErrCode>(0);
  s = exists ? js_UpdateStream(&info, nats_.js(), &stream, nullptr, &jerr)
             : js_AddStream(&info, nats_.js(), &stream, nullptr, &jerr);
  if (info) {
    stream_created_ns_ = info->Created;
    stream_first_seq_ = info->State.FirstSeq;
    stream_last_seq_ = info->State.LastSeq;
    jsStreamInfo_Destroy(info);
  }
  if (s != NATS_OK) {
    spdlog::warn("JetStream stream {} could not be {}: {}", stream.Name,
                 exists ? "updated" : "created", status_text(s, jerr));
    return false;
  }
  return true;
}

bool JetStreamIntake::ensure_consumer() {
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = consumer_.c_str();
  cc.Description = "odin-ws instance intake";
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = ns_of(config_.js_consumer_ack_wait);
  // A new instance starts with what is published from now on; an existing consumer carries on
  // from its last ack, so a restart of this instance loses nothing. One made again while this
  // instance reads the stream (deleted by an operator, or with its stream) starts right after
  // what was handed over, so nothing published meanwhile is skipped, even on a quiet stream.
  cc.DeliverPolicy = js_DeliverNew;
  cc.FilterSubject = subject_filter_.c_str();
  cc.MaxAckPending = 20'000;
  cc.InactiveThreshold = kConsumerInactiveNs;  // consumers of instances gone for good vanish
  jsConsumerInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&info, nats_.js(), config_.js_stream_name.c_str(),
                                    consumer_.c_str(), nullptr, &jerr);
  const bool exists = s == NATS_OK;
  if (exists && info && info->Config) {  // where it starts cannot change
    cc.DeliverPolicy = info->Config->DeliverPolicy;
    cc.OptStartSeq = info->Config->OptStartSeq;
  } else if (!exists && bound_before_) {
    cc.DeliverPolicy = js_DeliverByStartSequence;
    cc.OptStartSeq = dedupe_.last() + 1;
  }
  if (info) jsConsumerInfo_Destroy(info);
  info = nullptr;
  if (!exists && s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) {
    spdlog::warn("JetStream consumer {} lookup failed: {}", consumer_, status_text(s, jerr));
    return false;
  }
  jerr = static_cast<jsErrCode>(0);
  s = exists
          ? js_UpdateConsumer(&info, nats_.js(), config_.js_stream_name.c_str(), &cc, nullptr,
                              &jerr)
          : js_AddConsumer(&info, nats_.js(), config_.js_stream_name.c_str(), &cc, nullptr, &jerr);
  if (info) {
    // Where its deliveries start: a new consumer (nothing delivered) after the stream's last
    // message, an existing one after its ack floor (what lies beyond comes again).
    consumer_start_ =
        info->Delivered.Consumer == 0 ? info->Delivered.Stream : info->AckFloor.Stream;
    jsConsumerInfo_Destroy(info);
  }
  if (s != NATS_OK) {
    spdlog::warn("JetStream consumer {} could not be {}: {}", consumer_,
                 exists ? "updated" : "created", status_text(s, jerr));
    return false;
  }
  return true;
}

bool JetStreamIntake::consumer_exists() {
  jsConsumerInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&info, nats_.js(), config_.js_stream_name.c_str(),
                                    consumer_.c_str(), nullptr, &jerr);
  if (info) jsConsumerInfo_Destroy(info);
  // Only a definite "not found" counts; a timeout while NATS is away is not a verdict.
  return !(s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr || jerr == JSStreamNotFoundErr);
}

void JetStreamIntake::drop_subscription() {
  counters_.intake_ready = false;
  batch_.unsubscribe();
}

// ---- pulling ------------------------------------------------------------------------------------

void JetStreamIntake::send_pull_request(size_t count) {
  // One request outstanding at a time, on our own inbox: every message it brings is taken,
  // whichever request it answers (nats.c's Fetch drops messages that answer an expired one).
  ++pull_id_;
  pull_reply_ = pull_inbox_ + "." + std::to_string(pull_id_);
  const std::string body = fmt::format(R"({{"batch":{},"expires":{}}})", count, kPullExpiresNs);
  natsStatus s = natsConnection_PublishRequestString(nats_.get(), pull_subject_.c_str(),
                                                     pull_reply_.c_str(), body.c_str());
  pull_owed_ = s == NATS_OK ? count : 0;
  pull_deadline_ns_ = core::steady_ns() + kPullExpiresNs + 1'000'000'000;
}

// The caps pay per pull request, not per batch: what a request asks for is what may come.
size_t JetStreamIntake::collect(IntakeRunner& runner) {
  if (pull_owed_ == 0 || core::steady_ns() > pull_deadline_ns_ || pull_lost_.exchange(false)) {
    // The previous request is over (or lost with a NATS restart): the caps pay for a new one,
    // and get back what the old one did not bring.
    runner.refund(pull_owed_);
    pull_owed_ = 0;
    const size_t allowed = runner.take_allowance();
    if (allowed == 0) return 0;
    send_pull_request(allowed);
  }
  if (!batch_.collect(runner, IntakeRunner::kBatch)) {
    // Every ~5 quiet seconds, make sure the consumer still exists (a NATS restart with memory
    // storage, or an operator, may have removed it): otherwise we would wait forever.
    if (++quiet_polls_ >= 10) check_consumer_ = true;
  } else {
    quiet_polls_ = 0;
  }
  // Status messages end a request (404/408: nothing more to give), report a changed consumer
  // (409) or are idle heartbeats (100); everything else is a stream message.
  std::erase_if(batch_.messages, [this](natsMsg* msg) {
    const char* status = nullptr;
    if (natsMsg_GetDataLength(msg) != 0 || natsMsgHeader_Get(msg, "Status", &status) != NATS_OK ||
        !status) {
      if (pull_owed_ > 0) --pull_owed_;
      return false;
    }
    const std::string_view code = status;
    if (code != "100" && natsMsg_GetSubject(msg) == pull_reply_) pull_owed_ = 0;
    // 409: the consumer changed or went; 503: no one answers for it (its stream is gone).
    if (code == "409" || code == "503") check_consumer_ = true;
    natsMsg_Destroy(msg);
    return true;
  });
  return batch_.messages.size();
}

void JetStreamIntake::convert(IntakeRunner& runner) {
  for (natsMsg* msg : batch_.messages) {
    uint64_t stream_sequence = 0;
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
      stream_sequence = meta->Sequence.Stream;
      jsMsgMetaData_Destroy(meta);
      const uint64_t last = dedupe_.last();
      if (!dedupe_.first_delivery(stream_sequence)) {
        runner.reject(ops::IntakeReject::kDuplicate, natsMsg_GetSubject(msg));
        continue;
      }
      // Stream order for every client: what a lost delivery left out goes first.
      if (stream_sequence > last + 1) fill_gap(runner, last + 1, stream_sequence - 1);
    }
    NatsBatch::add(runner, msg, stream_sequence);
  }
}

void JetStreamIntake::settle(IntakeRunner&) {
  for (natsMsg* msg : gap_messages_)
    natsMsg_Destroy(msg);
  gap_messages_.clear();
  // Handed to the fan-out (or refused for good): acknowledged, so never redelivered. A lost
  // ack means a redelivery, which the dedupe drops.
  for (natsMsg* msg : batch_.messages) {
    if (const char* reply = natsMsg_GetReply(msg))
      natsConnection_PublishString(nats_.get(), reply, "+ACK");
  }
  batch_.destroy_messages();
  if (check_consumer_) {
    check_consumer_ = false;
    quiet_polls_ = 0;
    if (!consumer_exists()) {
      spdlog::warn("JetStream consumer {} is gone: creating it again", consumer_);
      drop_subscription();
    }
  }
}

// ---- stream order -------------------------------------------------------------------------------

// Reads stream messages [from, to] (lost on their way to us: a NATS node went away with them in
// flight) straight from the stream, so they go out before the message after them. One that no
// longer exists (expired, deleted) was never delivered anywhere. When NATS cannot answer, or the
// gap is too long to read, the histories restart after it instead.
void JetStreamIntake::fill_gap(IntakeRunner& runner, uint64_t from, uint64_t to) {
  auto restart_history = [&](std::string_view why) {
    runner.hand_over();  // what came before the gap keeps its place
    hub_.mark_complete_after(to);
    dedupe_.not_handed_over(from, to);  // a redelivery of one of them still goes out, late
    counters_.history_restarts.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn(
        "JetStream stream messages {}-{} not delivered to this instance and {}: resume "
        "from before them is no longer possible here",
        from, to, why);
  };
  if (to - from + 1 > kMaxGapFill) return restart_history("too many to read back");
  uint64_t filled = 0;
  for (uint64_t seq = from; seq <= to && runner.running(); ++seq) {
    natsMsg* msg = nullptr;
    natsStatus s = NATS_OK;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    for (int attempt = 0; attempt < kGapFillAttempts; ++attempt) {
      jerr = static_cast<jsErrCode>(0);
      s = js_GetMsg(&msg, nats_.js(), config_.js_stream_name.c_str(), seq, nullptr, &jerr);
      if (s == NATS_OK || s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) break;
    }
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) continue;
    if (s != NATS_OK) {
      from = seq;
      return restart_history("the stream cannot be read now: " + status_text(s, jerr));
    }
    gap_messages_.push_back(msg);
    counters_.received.fetch_add(1, std::memory_order_relaxed);
    filled += NatsBatch::add(runner, msg, seq);
  }
  counters_.gap_filled.fetch_add(filled, std::memory_order_relaxed);
  spdlog::info("JetStream stream messages {}-{} were lost on the way: {} read back from the stream",
               from, to, filled);
}

// The stream was deleted and created again (by an operator, or NATS lost its storage): it is
// numbered from 1 again, so what was handed over of the old one says nothing about it, and every
// message of the new one would be taken for a repeat. Intake starts over at the new stream's
// first message (the consumer is made again to start there); what the old stream held
// that was not handed over yet is lost, and resuming from before now is no longer possible here:
// logged, counted, and the histories restart.
void JetStreamIntake::start_over_on_new_stream() {
  const uint64_t before = dedupe_.last();
  dedupe_.reset(stream_first_seq_ > 0 ? stream_first_seq_ - 1 : 0);
  hub_.mark_stream_reset(before);
  counters_.stream_resets.fetch_add(1, std::memory_order_relaxed);
  counters_.history_restarts.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn(
      "JetStream stream {} was deleted and created again (this instance had handed over up to "
      "sequence {}; the new one holds {}-{}): intake starts over from its first message; old "
      "messages not delivered before it went are lost, and resume from before now is no longer "
      "possible here",
      config_.js_stream_name, before, stream_first_seq_, stream_last_seq_);
}

}  // namespace odin::broker
