// WS_DEMO_FEED: simulated prices for a list of symbols, published through the active broker at
// WS_DEMO_RATE messages per second, so the page has something live to show.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <random>
#include <string>
#include <vector>

namespace odin::broker {
class Broker;
}  // namespace odin::broker

namespace odin::app {

class DemoFeed {
 public:
  DemoFeed(boost::asio::io_context& io, broker::Broker& broker, double rate, unsigned symbols);
  void start();
  void stop();
  // The symbols the feed publishes (the first `symbols` of a built-in list, then SYM<n>).
  static std::vector<std::string> symbol_names(unsigned count);

 private:
  struct Quote {
    std::string symbol;
    double price;
    double open;
    double volume;
  };
  void tick();
  void arm();

  boost::asio::steady_timer timer_;
  broker::Broker& broker_;
  double rate_;
  double owed_ = 0.0;  // messages due but not yet sent (fractions carry over between ticks)
  std::chrono::steady_clock::time_point last_;
  std::vector<Quote> quotes_;
  std::mt19937_64 rng_;
  bool running_ = false;
};

}  // namespace odin::app
