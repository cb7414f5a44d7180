// The composition root: configuration, the event-loop threads, the hub, the broker, the
// resource guard and the admission decision. main() builds one Gateway and runs it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "app/routes.hpp"
#include "app/worker.hpp"
#include "auth/jwt.hpp"
#include "broker/broker.hpp"
#include "core/deflate_readers.hpp"
#include "guard/address_limits.hpp"
#include "guard/admission.hpp"
#include "guard/resource_monitor.hpp"
#include "http/static_files.hpp"
#include "hub/fanout.hpp"
#include "net/tls.hpp"
#include "ops/config.hpp"
#include "ops/metrics.hpp"
#include "ops/snapshot.hpp"

namespace odin::app {

class DemoFeed;

class Gateway {
 public:
  explicit Gateway(ops::Config config);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Binds, starts the threads and blocks until SIGTERM/SIGINT and the drain are over. Returns
  // the process exit status.
  int run();

  const ops::Config& config() const { return config_; }
  unsigned thread_count() const { return static_cast<unsigned>(workers_.size()); }
  Worker& worker(unsigned index) { return *workers_[index]; }
  const Worker& worker(unsigned index) const { return *workers_[index]; }
  hub::Hub& hub() { return *hub_; }
  const hub::Hub& hub() const { return *hub_; }
  const core::DeflateReaders& deflate_readers() const { return deflate_readers_; }
  broker::Broker& broker() { return *broker_; }
  const broker::Broker& broker() const { return *broker_; }
  guard::ResourceMonitor& resources() { return resources_; }
  const guard::ResourceMonitor& resources() const { return resources_; }
  const http::StaticFiles& web() const { return web_; }
  uint16_t port() const { return port_; }
  // WS_INSTANCE_ID, or <hostname>-<port>: how this instance is named on NATS.
  std::string instance_id() const;
  // mono_ms() at start (uptime is a duration).
  int64_t started_at_ms() const { return started_at_ms_; }

  // Admission of WebSocket upgrades: a ticket per open WebSocket connection.
  guard::Admission& admission() { return admission_; }
  uint32_t websocket_connections() const { return admission_.admitted(); }
  bool draining() const { return admission_.draining(); }
  // What /health, /stats and /metrics show, read now from any thread (app/snapshot.cpp).
  ops::OpsSnapshot snapshot() const;

  guard::AddressLimits& address_limits() { return address_limits_; }
  // The TLS context new connections use (null: plain). Connections keep the one they started
  // with, so a reload never touches an open connection.
  std::shared_ptr<const net::TlsContext> tls_context() const {
    std::lock_guard lock(tls_mutex_);
    return tls_context_;
  }
  // (Re)loads WS_TLS_CERT / WS_TLS_KEY; on failure the old context stays and the error is
  // returned.
  std::string load_tls();
  // WS_AUTH=jwt: the verifier of upgrade and `auth` tokens (null when auth is off).
  std::shared_ptr<const auth::JwtVerifier> jwt_verifier() const {
    std::lock_guard lock(tls_mutex_);
    return jwt_verifier_;
  }
  // (Re)loads WS_JWT_SECRET or WS_JWT_PUBLIC_KEY; on failure the old verifier stays.
  std::string load_jwt();

 private:
  // Members are destroyed in reverse declaration order, after ~Gateway has stopped the broker
  // and joined the loop threads. Each one is declared after everything it uses, so nothing is
  // destroyed while something that refers to it still lives: the loops' connections give their
  // address slots and connection count back when they are destroyed, the hub points into the
  // loops' fan-outs, the broker feeds the hub and reads the resource monitor, and the demo
  // feed's timer runs on loop 0's io_context and publishes through the broker.
  ops::Config config_;
  guard::ResourceMonitor resources_;
  http::StaticFiles web_;
  uint16_t port_ = 0;
  int64_t started_at_ms_ = 0;
  // Before the workers: the clients' tickets go back to it when they are destroyed.
  guard::Admission admission_{config_, resources_};
  guard::AddressLimits address_limits_;
  Routes routes_{*this};
  mutable std::mutex tls_mutex_;  // guards the two reloadable pieces below
  std::shared_ptr<const net::TlsContext> tls_context_;
  std::shared_ptr<const auth::JwtVerifier> jwt_verifier_;
  // The broker as the sessions' StreamReader: the workers are built before the broker, which
  // feeds their hub.
  struct BrokerStreamReader final : core::StreamReader {
    broker::Broker* broker = nullptr;
    void fetch(std::unique_ptr<core::StreamFetch> fetch, size_t limit,
               core::StreamFetchDone done) override {
      broker->fetch(std::move(fetch), limit, std::move(done));
    }
    bool reserve_stream_read(uint32_t cap) override { return broker->reserve_stream_read(cap); }
    void release_stream_read() override { broker->release_stream_read(); }
    void count_abandoned_stream_read() override { broker->count_abandoned_stream_read(); }
  };
  BrokerStreamReader stream_reader_;
  // Connections reading compressed frames: the clients count themselves, the hub reads it.
  core::DeflateReaders deflate_readers_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<hub::Hub> hub_;
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<DemoFeed> demo_feed_;
  // Re-reads every file-based secret (certificate, key, JWT public key) after SIGHUP.
  void reload_files();
};

}  // namespace odin::app
