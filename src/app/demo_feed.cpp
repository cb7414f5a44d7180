// Simulated price feed (see demo_feed.hpp): a random walk per symbol.
#include "app/demo_feed.hpp"

#include <fmt/format.h>

#include <array>
#include <cmath>

#include "broker/broker.hpp"
#include "hub/fanout.hpp"
#include "spdlog/spdlog.h"

namespace odin::app {

namespace {
constexpr auto kTick = std::chrono::milliseconds(20);

constexpr std::array<std::pair<const char*, double>, 40> kKnown{{
    {"BTCUSD", 64000}, {"ETHUSD", 3200},  {"SOLUSD", 150},  {"BNBUSD", 580},   {"XRPUSD", 0.52},
    {"ADAUSD", 0.45},  {"DOGEUSD", 0.12}, {"AVAXUSD", 35},  {"DOTUSD", 7.1},   {"LINKUSD", 14.5},
    {"MATICUSD", 0.7}, {"LTCUSD", 82},    {"TRXUSD", 0.12}, {"ATOMUSD", 8.9},  {"UNIUSD", 7.6},
    {"XLMUSD", 0.11},  {"ETCUSD", 26},    {"FILUSD", 5.8},  {"APTUSD", 8.8},   {"ARBUSD", 1.1},
    {"NEARUSD", 5.2},  {"OPUSD", 2.4},    {"ICPUSD", 12},   {"HBARUSD", 0.09}, {"VETUSD", 0.03},
    {"ALGOUSD", 0.18}, {"AAVEUSD", 95},   {"MKRUSD", 2600}, {"SANDUSD", 0.45}, {"MANAUSD", 0.42},
    {"AXSUSD", 7.3},   {"EGLDUSD", 38},   {"XTZUSD", 0.95}, {"EOSUSD", 0.8},   {"THETAUSD", 1.9},
    {"FTMUSD", 0.7},   {"GRTUSD", 0.27},  {"SNXUSD", 2.9},  {"CRVUSD", 0.45},  {"LDOUSD", 2.1},
}};
}  // namespace

std::vector<std::string> DemoFeed::symbol_names(unsigned count) {
  std::vector<std::string> names;
  for (unsigned i = 0; i < count; ++i) {
    names.push_back(i < kKnown.size() ? std::string(kKnown[i].first) : fmt::format("SYM{:03}", i));
  }
  return names;
}

DemoFeed::DemoFeed(boost::asio::io_context& io, broker::Broker& broker, double rate,
                   unsigned symbols)
    : timer_(io), broker_(broker), rate_(rate), rng_(std::random_device{}()) {
  const auto names = symbol_names(symbols);
  std::uniform_real_distribution<double> start(1.0, 500.0);
  for (unsigned i = 0; i < names.size(); ++i) {
    const double price = i < kKnown.size() ? kKnown[i].second : std::round(start(rng_) * 100) / 100;
    quotes_.push_back(Quote{names[i], price, price, 0.0});
  }
}

void DemoFeed::start() {
  running_ = true;
  last_ = std::chrono::steady_clock::now();
  arm();
}

void DemoFeed::stop() {
  running_ = false;
  timer_.cancel();
}

void DemoFeed::arm() {
  timer_.expires_after(kTick);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || !running_) return;
    tick();
    arm();
  });
}

void DemoFeed::tick() {
  const auto now = std::chrono::steady_clock::now();
  owed_ += rate_ * std::chrono::duration<double>(now - last_).count();
  last_ = now;
  const auto due = static_cast<size_t>(owed_);
  if (due == 0 || quotes_.empty()) return;
  owed_ -= static_cast<double>(due);

  std::uniform_int_distribution<size_t> pick(0, quotes_.size() - 1);
  std::normal_distribution<double> step(0.0, 0.0015);
  std::uniform_real_distribution<double> traded(0.01, 5.0);
  const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  std::vector<std::string> payloads;
  std::vector<core::IngestItem> items;
  payloads.reserve(due);
  items.reserve(due);
  for (size_t i = 0; i < due; ++i) {
    Quote& q = quotes_[pick(rng_)];
    q.price = std::max(q.price * (1.0 + step(rng_)), 1e-6);
    q.volume += traded(rng_);
    const double change = (q.price - q.open) / q.open * 100.0;
    const int decimals = q.price < 1 ? 5 : (q.price < 100 ? 3 : 2);
    payloads.push_back(
        fmt::format(R"({{"symbol":"{}","price":{:.{}f},"change":{:.3f},"volume":{:.2f},"t":{}}})",
                    q.symbol, q.price, decimals, change, q.volume, now_ns));
    items.push_back(core::IngestItem{q.symbol, "price:update", payloads.back(), true});
  }
  broker_.publish(items, [](core::PublishOutcome outcome) {
    if (!outcome.error.empty()) spdlog::debug("demo feed: {}", outcome.error);
  });
}

}  // namespace odin::app
