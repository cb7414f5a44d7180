// publisher: the benchmark publisher for odin-ws. It publishes at a fixed total rate (optionally
// with a burst window), round-robin over channels ch0..ch{C-1}, either straight on NATS (plain
// NATS text protocol over TCP) or through the gateway's POST /publish, and prints one JSON line:
//   {"published":N,"seconds":S,"rate":R,"max_lag_ms":L,...}
// Each message's data object is exactly --size bytes:
//   {"t":<CLOCK_REALTIME unix ns just before the write>,"n":<per-channel counter from
//   1>,"pad":"x.."}
// with t first and n second, because the load clients read them at those fixed places.
// --payload market|tick replace the padding with realistic data after t and n (for compression
// measurements): an order-book/trade object of about 500 bytes, or a price tick of about 180
// bytes, whose numbers follow a seeded random walk per channel (deterministic, never padding).
//
// It shares the machine (often two cores) with the gateway it feeds, so it is built to be cheap:
// one thread, a tick at most every millisecond (fewer when the rate needs fewer), and every
// message due by a tick goes out in one write. The schedule is computed from the start time, so
// the rate never drifts; a late tick just carries more messages.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "bench_common.hpp"

namespace {

constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kMs = 1'000'000;
// Finer ticks would only cost CPU: 1 ms already keeps the added latency far below what we measure.
constexpr int64_t kTick = kMs;
// The gateway refuses HTTP bodies over 1 MiB; stay under it with room for the last message.
constexpr size_t kMaxHttpBody = 1000 * 1000;
// Bounds one write when far behind, so the buffer stays small and input (PING, -ERR) is still
// looked at between writes.
constexpr size_t kMaxWriteBytes = 4 * 1024 * 1024;
// A write whose oldest message is later than this counts as catching up (and is reported).
constexpr int64_t kLateNs = 5 * kMs;
// The payload's fixed part at its longest (19-digit t, 20-digit n); smaller sizes cannot be met.
constexpr long kMinSize = 60;

[[noreturn]] __attribute__((format(printf, 1, 2))) void die(const char* fmt, ...) {
  std::fprintf(stderr, "publisher: ");
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
  std::exit(1);
}

struct Options {
  std::string nats;  // host:port
  std::string http;  // host:port
  double rate = 1000;
  long channels = 1;
  long size = 500;
  double duration = -1;  // seconds; -1: not given
  long long count = -1;  // -1: not given
  std::string prefix = "odin.token.";
  std::string type;  // empty: none given (the gateway then uses "message")
  double burst_rate = -1;
  double burst_at = 0;
  double burst_for = 0;
  std::string payload = "pad";  // pad | market | tick
};

void usage() {
  std::fprintf(stderr,
               "usage: publisher (--nats HOST:PORT | --http HOST:PORT) [options]\n"
               "  --rate R          messages per second in total (default 1000)\n"
               "  --channels C      round-robin over ch0..ch{C-1} (default 1)\n"
               "  --size S          data object bytes, >= %ld (default 500)\n"
               "  --duration D      seconds to publish (default 10 unless --count is given)\n"
               "  --count N         messages to publish (with --duration: whichever ends first)\n"
               "  --prefix P        NATS subject prefix (default odin.token.)\n"
               "  --type T          message type (NATS: HPUB with a Type header; HTTP: \"type\")\n"
               "  --burst-rate R2 --burst-at T1 --burst-for T2\n"
               "                    publish at R2 instead of R from T1 s after start for T2 s\n"
               "  --payload P       pad (default: --size bytes of padding), market (an order\n"
               "                    book + trade object, ~500 bytes) or tick (~180 bytes); market\n"
               "                    and tick ignore --size\n",
               kMinSize);
  std::exit(2);
}

double to_double(const char* flag, const char* v) {
  char* end = nullptr;
  double d = std::strtod(v, &end);
  if (end == v || *end != '\0' || !std::isfinite(d) || d < 0) die("bad value for %s: %s", flag, v);
  return d;
}

long long to_int(const char* flag, const char* v) {
  char* end = nullptr;
  long long x = std::strtoll(v, &end, 10);
  if (end == v || *end != '\0' || x < 0) die("bad value for %s: %s", flag, v);
  return x;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") usage();
    if (i + 1 >= argc) die("missing value for %s", argv[i]);
    const char* v = argv[++i];
    if (a == "--nats")
      o.nats = v;
    else if (a == "--http")
      o.http = v;
    else if (a == "--rate")
      o.rate = to_double(argv[i - 1], v);
    else if (a == "--channels")
      o.channels = static_cast<long>(to_int(argv[i - 1], v));
    else if (a == "--size")
      o.size = static_cast<long>(to_int(argv[i - 1], v));
    else if (a == "--duration")
      o.duration = to_double(argv[i - 1], v);
    else if (a == "--count")
      o.count = to_int(argv[i - 1], v);
    else if (a == "--prefix")
      o.prefix = v;
    else if (a == "--type")
      o.type = v;
    else if (a == "--burst-rate")
      o.burst_rate = to_double(argv[i - 1], v);
    else if (a == "--burst-at")
      o.burst_at = to_double(argv[i - 1], v);
    else if (a == "--burst-for")
      o.burst_for = to_double(argv[i - 1], v);
    else if (a == "--payload")
      o.payload = v;
    else
      die("unknown flag %s (see --help)", argv[i - 1]);
  }
  if (o.nats.empty() == o.http.empty()) die("give exactly one of --nats and --http");
  if (o.rate <= 0) die("--rate must be > 0");
  if (o.channels < 1) die("--channels must be >= 1");
  if (o.size < kMinSize) die("--size must be at least %ld", kMinSize);
  if (!o.http.empty() && o.size + 200 > static_cast<long>(kMaxHttpBody))
    die("--size too large for one POST /publish body");
  if (o.duration < 0 && o.count < 0) o.duration = 10;
  if (o.payload != "pad" && o.payload != "market" && o.payload != "tick")
    die("--payload must be pad, market or tick");
  if (o.type.find_first_of("\r\n\"\\") != std::string::npos) die("--type must be plain text");
  if (o.prefix.find_first_of(" \t\r\n") != std::string::npos) die("--prefix has whitespace");
  return o;
}

// The rate schedule: R, except R2 in [T1, T1 + T2). Message k (from 0) is due at the time where
// the cumulative count reaches k, so the first goes out at once and nothing drifts.
struct Schedule {
  double r, r2, t1, t2;  // seconds
  explicit Schedule(const Options& o)
      : r(o.rate),
        r2(o.burst_rate < 0 ? o.rate : o.burst_rate),
        t1(o.burst_rate < 0 ? 1e18 : o.burst_at),
        t2(o.burst_rate < 0 ? 0 : o.burst_for) {}

  double cumulative(double t) const {
    if (t <= t1) return r * t;
    if (t <= t1 + t2) return r * t1 + r2 * (t - t1);
    return r * t1 + r2 * t2 + r * (t - t1 - t2);
  }
  // Messages due by time t (seconds since start).
  long long due(double t) const {
    return static_cast<long long>(std::floor(cumulative(t) + 1e-9)) + 1;
  }
  // When message k is due (seconds since start).
  double at(long long k) const {
    const double x = static_cast<double>(k);
    const double a = r * t1;
    if (x <= a) return x / r;
    const double b = a + r2 * t2;
    if (x <= b && r2 > 0) return t1 + (x - a) / r2;
    return t1 + t2 + (x - b) / r;
  }
  // Messages due strictly before time d: the count a --duration run publishes.
  long long before(double d) const {
    return static_cast<long long>(std::ceil(cumulative(d) - 1e-9));
  }
};

int connect_to(const std::string& hostport) {
  const size_t colon = hostport.rfind(':');
  if (colon == std::string::npos) die("expected HOST:PORT, got %s", hostport.c_str());
  const std::string host = hostport.substr(0, colon);
  const std::string port = hostport.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res)
    die("cannot resolve %s", hostport.c_str());
  int fd = -1;
  int err = 0;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    err = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) die("cannot connect to %s: %s", hostport.c_str(), std::strerror(err));
  // Each write is a whole batch already; Nagle would only hold the tail of it back.
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      die("write failed: %s", std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// A seeded random walk per channel, for --payload market|tick: prices in cents, sizes in
// ten-thousandths, so that every number prints exactly with 2 or 4 decimals.
struct Market {
  uint64_t rng;
  int64_t price_cents;  // last trade
  int64_t open_cents;
  int64_t high_cents;
  int64_t low_cents;
  int64_t volume_e4;  // 24 h volume in 1e-4 units
  uint64_t trade_id;
  const char* symbol;

  explicit Market(long ch)
      : rng(0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(ch + 1) ^ 0x0d1a5eedULL),
        price_cents(4325117),
        open_cents(4325117),
        high_cents(4325117),
        low_cents(4325117),
        volume_e4(123456789),
        trade_id(880000000ULL + static_cast<uint64_t>(ch) * 1000000ULL) {
    static constexpr const char* kSymbols[] = {"BTC-USD", "BTC-EUR",  "BTC-USDT", "BTC-GBP",
                                               "BTC-JPY", "BTC-USDC", "BTC-AUD",  "BTC-CAD"};
    symbol = kSymbols[static_cast<size_t>(ch) % 8];
  }
  uint64_t next() {  // splitmix64
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int64_t uniform(int64_t lo, int64_t hi) {  // [lo, hi]
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  void step() {
    price_cents = std::max<int64_t>(100, price_cents + uniform(-250, 250));
    high_cents = std::max(high_cents, price_cents);
    low_cents = std::min(low_cents, price_cents);
    ++trade_id;
  }
};

void append_fixed(std::string& s, int64_t v, int decimals) {
  char buf[32];
  const int64_t scale = decimals == 2 ? 100 : 10000;
  const int64_t a = v < 0 ? -v : v;
  const int len =
      std::snprintf(buf, sizeof buf, "%s%lld.%0*lld", v < 0 ? "-" : "",
                    static_cast<long long>(a / scale), decimals, static_cast<long long>(a % scale));
  s.append(buf, static_cast<size_t>(len));
}

class Publisher {
 public:
  explicit Publisher(const Options& o)
      : o_(o), sched_(o), counters_(static_cast<size_t>(o.channels), 0), pad_(o.size, 'x') {
    if (!o.type.empty()) hdr_ = "NATS/1.0\r\nType: " + o.type + "\r\n\r\n";
    if (o.duration >= 0) total_ = sched_.before(o.duration);
    if (o.count >= 0) total_ = std::min(total_, o.count);
    for (long c = 0; c < o.channels; ++c)
      names_.push_back("ch" + std::to_string(c));
    if (o.payload != "pad")
      for (long c = 0; c < o.channels; ++c)
        markets_.emplace_back(c);
    buf_.reserve(kMaxWriteBytes + 4096);
  }

  int run() {
    http_ = !o_.http.empty();
    fd_ = connect_to(http_ ? o_.http : o_.nats);
    if (!http_) nats_handshake();

    start_ = bench::monotonic_ns();
    int64_t last_tick = start_ - kTick;
    int64_t last_report = 0;
    int64_t last_write_end = start_;
    while (sent_ < total_) {
      const int64_t now = bench::monotonic_ns();
      const double t = static_cast<double>(now - start_) / kSec;
      const long long due = std::min(total_, sched_.due(t));
      if (due > sent_) {
        last_tick = now;
        // Lag of the oldest message in this write: how late the schedule is being kept.
        const int64_t lag = now - start_ - static_cast<int64_t>(sched_.at(sent_) * kSec);
        max_lag_ = std::max(max_lag_, lag);
        const long long n = http_ ? send_http(due) : send_nats(due);
        ++writes_;
        max_batch_ = std::max(max_batch_, n);
        if (lag > kLateNs) {
          ++late_writes_;
          if (now - last_report >= kSec) {
            last_report = now;
            std::fprintf(stderr,
                         "publisher: behind by %.1f ms at %.1f s, catching up (%lld messages in "
                         "one write)\n",
                         static_cast<double>(lag) / kMs, t, n);
          }
        }
        last_write_end = bench::monotonic_ns();
        if (sent_ < due) continue;  // the write was capped: more is due at once
        if (sent_ >= total_) break;
      }
      // Next wake: a tick after the last one, or later when the next message is not due yet.
      const int64_t next_due = start_ + static_cast<int64_t>(std::ceil(sched_.at(sent_) * kSec));
      const int64_t wake = std::max(last_tick + kTick, next_due);
      wait_until(wake);
    }
    if (!http_) {
      // The server has handled everything before it answers this PING.
      write_all(fd_, "PING\r\n", 6);
      pong_pending_ = true;
      const int64_t deadline = bench::monotonic_ns() + 10 * kSec;
      while (pong_pending_) {
        if (bench::monotonic_ns() > deadline) die("no PONG from NATS within 10 s");
        wait_until(deadline);
      }
    }
    // Run time: until the last write, but at least the schedule's span for that many messages
    // (otherwise the first message's t = 0 would overstate the rate of short runs).
    const double elapsed = static_cast<double>(last_write_end - start_) / kSec;
    const double seconds = std::max(elapsed, sent_ > 0 ? sched_.at(sent_) : 0.0);
    std::printf(
        "{\"published\":%lld,\"seconds\":%.3f,\"rate\":%.1f,\"max_lag_ms\":%.3f,\"writes\":%lld,"
        "\"max_batch\":%lld,\"late_writes\":%lld}\n",
        sent_, seconds, seconds > 0 ? static_cast<double>(sent_) / seconds : 0.0,
        static_cast<double>(max_lag_) / kMs, writes_, max_batch_, late_writes_);
    std::fflush(stdout);
    if (fd_ >= 0) close(fd_);
    return 0;
  }

 private:
  void nats_handshake() {
    // INFO comes first; anything else (or nothing) means this is not a NATS server.
    const int64_t deadline = bench::monotonic_ns() + 5 * kSec;
    while (in_.find("\r\n") == std::string::npos) {
      if (bench::monotonic_ns() > deadline) die("no INFO from %s", o_.nats.c_str());
      read_some(200);
    }
    if (in_.compare(0, 5, "INFO ") != 0) die("%s did not greet with INFO", o_.nats.c_str());
    in_.erase(0, in_.find("\r\n") + 2);
    // PING right away so that a refused CONNECT shows up as -ERR before we start the clock.
    static constexpr std::string_view kConnect =
        "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\nPING\r\n";
    write_all(fd_, kConnect.data(), kConnect.size());
    pong_pending_ = true;
    while (pong_pending_) {
      if (bench::monotonic_ns() > deadline) die("no PONG from %s after CONNECT", o_.nats.c_str());
      wait_until(deadline);
    }
  }

  // Sleeps until the absolute monotonic time, or until NATS says something (PING, -ERR, PONG).
  void wait_until(int64_t wake) {
    const int64_t d = wake - bench::monotonic_ns();
    if (d <= 0 && !pong_pending_) return;
    timespec ts{static_cast<time_t>(std::max<int64_t>(d, 0) / kSec),
                static_cast<long>(std::max<int64_t>(d, 0) % kSec)};
    pollfd p{fd_, POLLIN, 0};
    int r = ppoll(&p, 1, &ts, nullptr);
    if (r < 0 && errno != EINTR) die("poll: %s", std::strerror(errno));
    if (r > 0) {
      if (http_) {
        // Between requests the gateway may close an idle keep-alive connection: reconnect on
        // the next request. Anything else unasked is a protocol error.
        char c;
        if (recv(fd_, &c, 1, MSG_DONTWAIT | MSG_PEEK) > 0)
          die("the gateway sent something unasked");
        close(fd_);
        fd_ = -1;
        return;
      }
      read_some(0);
      handle_nats_input();
    }
  }

  void read_some(int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (timeout_ms > 0 && poll(&p, 1, timeout_ms) <= 0) return;
    char buf[16384];
    ssize_t n = recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) die("connection closed by the server%s%s", in_.empty() ? "" : ": ", in_.c_str());
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      die("read failed: %s", std::strerror(errno));
    }
    in_.append(buf, static_cast<size_t>(n));
  }

  void handle_nats_input() {
    size_t eol;
    while ((eol = in_.find("\r\n")) != std::string::npos) {
      std::string line = in_.substr(0, eol);
      in_.erase(0, eol + 2);
      if (line == "PING") {
        write_all(fd_, "PONG\r\n", 6);
      } else if (line == "PONG") {
        pong_pending_ = false;
      } else if (line.compare(0, 4, "-ERR") == 0) {
        die("NATS error: %s", line.c_str());
      }
      // +OK and INFO updates need nothing.
    }
  }

  // One message's data object: exactly --size bytes, or with --payload market|tick the next
  // state of channel ch's market (t and n first all the same).
  void put_payload(std::string& s, int64_t t, uint64_t n, size_t ch) {
    if (o_.payload == "pad") return put_pad(s, t, n);
    Market& m = markets_[ch];
    m.step();
    const int64_t size = m.uniform(1, 25000);  // last trade size, 1e-4 units
    m.volume_e4 += size;
    const int64_t spread = m.uniform(1, 12);
    const int64_t bid = m.price_cents - spread / 2 - 1;
    const int64_t ask = bid + spread;
    s.append("{\"t\":");
    bench::append_decimal(s, static_cast<uint64_t>(t));
    s.append(",\"n\":");
    bench::append_decimal(s, n);
    s.append(",\"symbol\":\"");
    s.append(m.symbol);
    if (o_.payload == "tick") {
      s.append("\",\"price\":");
      append_fixed(s, m.price_cents, 2);
      s.append(",\"change\":");
      append_fixed(s, (m.price_cents - m.open_cents) * 1000000 / m.open_cents, 4);  // %
      s.append(",\"volume\":");
      append_fixed(s, m.volume_e4, 4);
      s.append(",\"bid\":");
      append_fixed(s, bid, 2);
      s.append(",\"ask\":");
      append_fixed(s, ask, 2);
      s.append(",\"size\":");
      append_fixed(s, size, 4);
      s.append(",\"side\":\"");
      s.append(m.next() & 1 ? "buy\"" : "sell\"");
      s.append(",\"ts\":");
      bench::append_decimal(s, static_cast<uint64_t>(t / kMs));
      s.push_back('}');
      return;
    }
    s.append("\",\"type\":\"book\",\"trade_id\":");
    bench::append_decimal(s, m.trade_id);
    s.append(",\"side\":\"");
    s.append(m.next() & 1 ? "buy" : "sell");
    s.append("\",\"last\":");
    append_fixed(s, m.price_cents, 2);
    s.append(",\"last_size\":");
    append_fixed(s, size, 4);
    s.append(",\"best_bid\":");
    append_fixed(s, bid, 2);
    s.append(",\"best_ask\":");
    append_fixed(s, ask, 2);
    s.append(",\"open_24h\":");
    append_fixed(s, m.open_cents, 2);
    s.append(",\"high_24h\":");
    append_fixed(s, m.high_cents, 2);
    s.append(",\"low_24h\":");
    append_fixed(s, m.low_cents, 2);
    s.append(",\"volume_24h\":");
    append_fixed(s, m.volume_e4, 4);
    s.append(",\"bids\":[");
    int64_t px = bid;
    for (int i = 0; i < 5; ++i) {
      if (i) px -= m.uniform(1, 40);
      s.append(i ? ",[" : "[");
      append_fixed(s, px, 2);
      s.push_back(',');
      append_fixed(s, m.uniform(100, 60000), 4);
      s.push_back(']');
    }
    s.append("],\"asks\":[");
    px = ask;
    for (int i = 0; i < 5; ++i) {
      if (i) px += m.uniform(1, 40);
      s.append(i ? ",[" : "[");
      append_fixed(s, px, 2);
      s.push_back(',');
      append_fixed(s, m.uniform(100, 60000), 4);
      s.push_back(']');
    }
    s.append("],\"ts\":");
    bench::append_decimal(s, static_cast<uint64_t>(t / kMs));
    s.append(",\"exchange_ts\":");
    bench::append_decimal(s, static_cast<uint64_t>(t / 1000 - m.uniform(200, 4000)));
    s.push_back('}');
  }

  void put_pad(std::string& s, int64_t t, uint64_t n) {
    s.append("{\"t\":");
    bench::append_decimal(s, static_cast<uint64_t>(t));
    s.append(",\"n\":");
    bench::append_decimal(s, n);
    s.append(",\"pad\":\"");
    const size_t fixed =
        5 + bench::decimal_digits(static_cast<uint64_t>(t)) + 5 + bench::decimal_digits(n) + 8 + 2;
    s.append(pad_.data(), static_cast<size_t>(o_.size) - fixed);
    s.append("\"}");
  }

  long long send_nats(long long due) {
    buf_.clear();
    const int64_t t = bench::realtime_ns();
    const long long first = sent_;
    while (sent_ < due && buf_.size() < kMaxWriteBytes) {
      const size_t ch = static_cast<size_t>(sent_ % o_.channels);
      const uint64_t n = ++counters_[ch];
      if (hdr_.empty()) {
        buf_.append("PUB ");
      } else {
        buf_.append("HPUB ");
      }
      buf_.append(o_.prefix);
      buf_.append(names_[ch]);
      buf_.push_back(' ');
      if (!hdr_.empty()) {
        bench::append_decimal(buf_, hdr_.size());
        buf_.push_back(' ');
      }
      size_t size = static_cast<size_t>(o_.size);
      if (!markets_.empty()) {
        one_.clear();
        put_payload(one_, t, n, ch);
        size = one_.size();
      }
      bench::append_decimal(buf_, hdr_.size() + size);
      buf_.append("\r\n");
      buf_.append(hdr_);
      if (markets_.empty())
        put_payload(buf_, t, n, ch);
      else
        buf_.append(one_);
      buf_.append("\r\n");
      ++sent_;
    }
    write_all(fd_, buf_.data(), buf_.size());
    return sent_ - first;
  }

  long long send_http(long long due) {
    const long long first = sent_;
    const int64_t t = bench::realtime_ns();
    body_.clear();
    body_.push_back('[');
    while (sent_ < due &&
           (sent_ == first || body_.size() + static_cast<size_t>(o_.size) + 200 < kMaxHttpBody)) {
      const size_t ch = static_cast<size_t>(sent_ % o_.channels);
      const uint64_t n = ++counters_[ch];
      if (sent_ != first) body_.push_back(',');
      body_.append("{\"channel\":\"");
      body_.append(names_[ch]);
      if (!o_.type.empty()) {
        body_.append("\",\"type\":\"");
        body_.append(o_.type);
      }
      body_.append("\",\"data\":");
      put_payload(body_, t, n, ch);
      body_.push_back('}');
      ++sent_;
    }
    body_.push_back(']');
    buf_.clear();
    buf_.append("POST /publish HTTP/1.1\r\nHost: ");
    buf_.append(o_.http);
    buf_.append("\r\nContent-Type: application/json\r\nContent-Length: ");
    bench::append_decimal(buf_, body_.size());
    buf_.append("\r\n\r\n");
    buf_.append(body_);
    if (fd_ < 0) fd_ = connect_to(o_.http);
    write_all(fd_, buf_.data(), buf_.size());
    read_http_response(sent_ - first);
    return sent_ - first;
  }

  // Waits for the whole response: keep-alive, so its end is found by Content-Length.
  void read_http_response(long long expected) {
    const int64_t deadline = bench::monotonic_ns() + 10 * kSec;
    size_t head_end;
    while ((head_end = in_.find("\r\n\r\n")) == std::string::npos) {
      if (bench::monotonic_ns() > deadline) die("no HTTP response within 10 s");
      read_some(100);
    }
    const std::string head = in_.substr(0, head_end);
    size_t length = 0;
    bool has_length = false;
    size_t pos = 0;
    while ((pos = head.find("\r\n", pos)) != std::string::npos) {
      pos += 2;
      if (strncasecmp(head.c_str() + pos, "content-length:", 15) == 0) {
        length = std::strtoul(head.c_str() + pos + 15, nullptr, 10);
        has_length = true;
      } else if (strncasecmp(head.c_str() + pos, "transfer-encoding:", 18) == 0) {
        die("chunked HTTP responses are not supported");
      }
    }
    if (!has_length) die("HTTP response without Content-Length: %s", head.c_str());
    while (in_.size() < head_end + 4 + length) {
      if (bench::monotonic_ns() > deadline) die("HTTP response body incomplete after 10 s");
      read_some(100);
    }
    const std::string body = in_.substr(head_end + 4, length);
    in_.erase(0, head_end + 4 + length);
    if (head.compare(0, 12, "HTTP/1.1 200") != 0)
      die("POST /publish answered %s %s", head.substr(0, head.find("\r\n")).c_str(), body.c_str());
    const std::string want = "\"published\":" + std::to_string(expected);
    if (body.find(want) == std::string::npos)
      die("POST /publish did not publish everything: %s", body.c_str());
  }

  const Options& o_;
  Schedule sched_;
  std::vector<uint64_t> counters_;
  std::vector<std::string> names_;
  std::vector<Market> markets_;  // --payload market|tick: one walk per channel
  std::string one_;              // one such payload, to know its size before the PUB line
  std::string pad_;
  std::string hdr_;
  std::string buf_;
  std::string body_;
  std::string in_;
  bool http_ = false;
  bool pong_pending_ = false;
  int fd_ = -1;
  int64_t start_ = 0;
  long long total_ = std::numeric_limits<long long>::max();
  long long sent_ = 0;
  long long writes_ = 0;
  long long max_batch_ = 0;
  long long late_writes_ = 0;
  int64_t max_lag_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  Publisher p(o);
  return p.run();
}
