// The composition root (see gateway.hpp): start-up, admission, signals, graceful drain.
#include "app/gateway.hpp"
#include "core/clock.hpp"

#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include <boost/asio/post.hpp>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include "app/demo_feed.hpp"
#include "broker/embedded_broker.hpp"
#include "broker/nats_broker.hpp"
#include "broker/redis_broker.hpp"
#include "http/http_phase.hpp"
#include "net/connection.hpp"
#include "net/event_loop.hpp"
#include "ops/render.hpp"
#include "spdlog/spdlog.h"

namespace odin::app {

Gateway::Gateway(ops::Config config)
    : config_(std::move(config)),
      address_limits_(config_.max_connections_per_ip, config_.max_sockets) {
  unsigned threads = config_.threads;
  if (threads == 0) {
    threads =
        static_cast<unsigned>(std::max(1.0, std::floor(guard::ResourceMonitor::available_cpus())));
  }
  threads = std::min(threads, 255u);  // the session id keeps the thread in its low byte
  std::vector<hub::ThreadFanout*> fanouts;
  std::vector<session::ClientThread*> client_threads;
  for (unsigned i = 0; i < threads; ++i) {
    net::LoopParts loop_parts;
    loop_parts.make_handler = [this](net::Connection& conn) {
      return std::make_unique<http::HttpPhase>(conn, config_, routes_);
    };
    loop_parts.tls_context = [this] { return tls_context(); };
    loop_parts.address_limits = &address_limits_;
    session::ClientThreadParts client_parts;
    client_parts.jwt_verifier = [this] { return jwt_verifier(); };
    client_parts.stream_reader = &stream_reader_;
    if (config_.compression) client_parts.deflate_readers = &deflate_readers_;
    workers_.push_back(
        std::make_unique<Worker>(config_, i, std::move(loop_parts), std::move(client_parts)));
    fanouts.push_back(&workers_.back()->fanout());
    client_threads.push_back(&workers_.back()->clients());
  }
  for (auto& worker : workers_)
    worker->clients().set_peers(client_threads);
  hub_ = std::make_unique<hub::Hub>(std::move(fanouts),
                                    config_.compression ? &deflate_readers_ : nullptr);
  resources_.configure(config_.cpu_limit, config_.memory_limit);
  const std::string root = config_.web_root.empty() ? std::string(ODIN_WEB_ROOT) : config_.web_root;
  const size_t files = web_.load(root);
  if (files == 0) spdlog::warn("no page files found in {}", root);
  const std::string sdk = config_.sdk_root.empty() ? std::string(ODIN_SDK_ROOT) : config_.sdk_root;
  if (web_.load(sdk, "/sdk/") == 0) spdlog::warn("no SDK modules found in {}", sdk);
}

Gateway::~Gateway() {
  if (broker_) broker_->stop();
  for (auto& worker : workers_)
    worker->loop().stop();
  for (auto& worker : workers_)
    worker->loop().join();
}

std::string Gateway::instance_id() const {
  if (!config_.instance_id.empty()) return config_.instance_id;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == 0) std::strcpy(host, "odin-ws");
  // A JetStream consumer name may not hold '.', '*', '>' or spaces.
  std::string id;
  for (const char* c = host; *c; ++c) {
    const bool plain = std::isalnum(static_cast<unsigned char>(*c)) || *c == '-' || *c == '_';
    id.push_back(plain ? *c : '_');
  }
  return id + "-" + std::to_string(port_);
}

std::string Gateway::load_tls() {
  auto loaded = net::TlsContext::load(config_.tls_cert, config_.tls_key);
  if (auto* error = std::get_if<std::string>(&loaded)) return *error;
  auto context = std::get<std::shared_ptr<const net::TlsContext>>(std::move(loaded));
  spdlog::info("TLS certificate loaded: {}", context->description());
  std::lock_guard lock(tls_mutex_);
  tls_context_ = std::move(context);
  return {};
}

std::string Gateway::load_jwt() {
  auth::JwtOptions options;
  options.audience = config_.jwt_audience;
  options.issuer = config_.jwt_issuer;
  options.leeway_seconds = config_.jwt_leeway_seconds;
  std::string variable = "WS_JWT_SECRET";
  auth::JwtVerifier::Result made = std::string();
  if (!config_.jwt_secret.empty()) {
    made = auth::JwtVerifier::from_secret(config_.jwt_secret, options);
  } else {
    variable = "WS_JWT_PUBLIC_KEY";
    std::string pem = config_.jwt_public_key;
    if (!pem.starts_with("-----BEGIN")) {  // a file: read it now (and again on SIGHUP)
      std::ifstream file(config_.jwt_public_key, std::ios::binary);
      if (!file) return fmt::format("WS_JWT_PUBLIC_KEY: cannot read '{}'", config_.jwt_public_key);
      pem.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    }
    made = auth::JwtVerifier::from_public_key_pem(pem, options);
  }
  if (auto* error = std::get_if<std::string>(&made)) return variable + ": " + *error;
  auto verifier =
      std::make_shared<const auth::JwtVerifier>(std::get<auth::JwtVerifier>(std::move(made)));
  spdlog::info("JWT authentication: {} tokens{}{}", verifier->algorithm_name(),
               options.audience.empty() ? "" : ", audience " + options.audience,
               options.issuer.empty() ? "" : ", issuer " + options.issuer);
  std::lock_guard lock(tls_mutex_);
  jwt_verifier_ = std::move(verifier);
  return {};
}

void Gateway::reload_files() {
  if (config_.auth_jwt && !config_.jwt_public_key.empty() &&
      !config_.jwt_public_key.starts_with("-----BEGIN")) {
    if (std::string problem = load_jwt(); !problem.empty()) {
      spdlog::error("SIGHUP: JWT key not reloaded, the previous key stays in use: {}", problem);
    }
  }
  if (!config_.tls_cert.empty()) {
    if (std::string problem = load_tls(); !problem.empty()) {
      spdlog::error("SIGHUP: TLS not reloaded, the previous certificate stays in use: {}", problem);
    }
  }
}

int Gateway::run() {
  // Signals are taken by this thread only (sigtimedwait below), never by an event loop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  if (!config_.tls_cert.empty()) {
    if (std::string problem = load_tls(); !problem.empty()) {
      spdlog::error("{}", problem);
      return 2;
    }
  }
  if (config_.auth_jwt) {
    if (std::string problem = load_jwt(); !problem.empty()) {
      spdlog::error("{}", problem);
      return 2;
    }
  }

  boost::asio::ip::tcp::endpoint endpoint(config_.listen_host.empty()
                                              ? boost::asio::ip::address_v4::any()
                                              : boost::asio::ip::make_address(config_.listen_host),
                                          config_.listen_port);
  try {
    port_ = workers_[0]->loop().listen(endpoint);
    endpoint.port(port_);
    for (size_t i = 1; i < workers_.size(); ++i)
      workers_[i]->loop().listen(endpoint);
  } catch (const boost::system::system_error& e) {
    spdlog::error("cannot listen on {}:{}: {}", endpoint.address().to_string(), config_.listen_port,
                  e.code().message());
    return 1;
  }
  started_at_ms_ = core::mono_ms();
  if (config_.broker == ops::BrokerKind::kNats || config_.broker == ops::BrokerKind::kJetStream) {
    broker_ = std::make_unique<broker::NatsBroker>(config_, instance_id(), *hub_, resources_);
  } else if (config_.broker == ops::BrokerKind::kRedis) {
    broker_ = std::make_unique<broker::RedisBroker>(config_, instance_id(), *hub_, resources_);
  } else {
    broker_ = std::make_unique<broker::EmbeddedBroker>(config_, *hub_, resources_);
  }
  stream_reader_.broker = broker_.get();
  if (std::string problem = broker_->start(); !problem.empty()) {
    spdlog::error("{}", problem);
    return 1;
  }
  if (config_.demo_feed) {
    demo_feed_ = std::make_unique<DemoFeed>(workers_[0]->loop().io(), *broker_, config_.demo_rate,
                                            config_.demo_symbols);
    demo_feed_->start();
  }
  for (auto& worker : workers_)
    worker->loop().start_thread();
  spdlog::info("odin-ws listening on {}:{} ({}) with {} event-loop thread(s), broker {}{}",
               endpoint.address().to_string(), port_, tls_context() ? "TLS" : "plain",
               workers_.size(), broker_->name(), config_.demo_feed ? ", demo feed on" : "");

  // Main thread: resource sampling once a second, periodic stats log, and the stop signal.
  int64_t next_stats_log = core::mono_ms() + config_.metrics_interval.count();
  int received = 0;
  while (received == 0) {
    timespec second{1, 0};
    const int sig = sigtimedwait(&signals, nullptr, &second);
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP received: reloading the TLS certificate and key and the JWT key file");
      reload_files();
      continue;
    }
    if (sig > 0) {
      received = sig;
      break;
    }
    resources_.sample();
    if (core::mono_ms() >= next_stats_log) {
      next_stats_log += config_.metrics_interval.count();
      spdlog::info("stats {}", ops::render_stats(snapshot()));
    }
  }

  spdlog::info("{} received: draining {} connection(s), up to {} ms", strsignal(received),
               websocket_connections(), config_.drain_timeout.count());
  admission_.begin_drain();
  // No new messages while clients are told to go: intake ends after the batch in hand (acked),
  // and publishes still queued are answered with an error.
  broker_->stop();
  if (demo_feed_) {
    boost::asio::post(workers_[0]->loop().io(), [feed = demo_feed_.get()] { feed->stop(); });
  }
  for (auto& worker : workers_) {
    net::EventLoop* loop = &worker->loop();
    boost::asio::post(loop->io(), [loop] { loop->begin_drain(); });
  }
  const int64_t deadline = core::mono_ms() + config_.drain_timeout.count();
  while (websocket_connections() > 0 && core::mono_ms() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const uint32_t left = websocket_connections();
  for (auto& worker : workers_)
    worker->loop().stop();
  for (auto& worker : workers_)
    worker->loop().join();
  if (left > 0) {
    spdlog::warn("drain timeout: {} connection(s) closed without finishing the handshake", left);
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace odin::app
