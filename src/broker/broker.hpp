// Where messages come from: the broker interface, and the embedded in-process broker used when
// no NATS_URL is set (publishing goes straight into the hub).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "hub/fanout.hpp"

namespace odin {

class Broker {
 public:
  virtual ~Broker() = default;
  virtual std::string_view name() const = 0;
  virtual bool connected() const = 0;
  // Publishes through the broker; returns an error text, empty on success.
  virtual std::string publish(std::span<const IngestItem> items) = 0;
};

class EmbeddedBroker final : public Broker {
 public:
  explicit EmbeddedBroker(Hub& hub) : hub_(hub) {}
  std::string_view name() const override { return "embedded"; }
  bool connected() const override { return true; }
  std::string publish(std::span<const IngestItem> items) override {
    hub_.ingest(items);
    return {};
  }

 private:
  Hub& hub_;
};

}  // namespace odin
