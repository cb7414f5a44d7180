// loadclient: the benchmark load client for odin-ws (and, for comparison, nats-server's WebSocket
// listener). It opens N WebSocket connections from several worker processes (every process on the
// bench machine is capped at 20,000 open files), subscribes connection i to K of C channels
// "ch0".."ch{C-1}", checks that every connection receives every message in order, and measures
// per-delivery latency, the time for a message to reach all of its subscribers, a per-second
// latency timeline, what the server does to clients that stop reading, and the server's RSS and
// CPU. The parent merges the workers' reports and prints one JSON line on stdout; see
// tools/bench/loadclient.md for the flags and the output.
//
// It shares the machine (often two cores) with the server it measures, so it is built to be
// cheap: one epoll loop per worker, 40 bytes per connection, frames parsed in place in one
// per-process read buffer (only a partial trailing frame is copied), fixed-size log-linear
// histograms instead of sample vectors, and reach-all bookkeeping per message, not per delivery.
//
// With --delivery latest it subscribes with a `subscribe` frame asking for latest-value delivery
// and checks the `conflated` counts per channel instead of expecting every message; with
// --observe-nats the parent reads what is published from NATS into memory shared with the
// workers, which sample how stale every connection's values are.
//
// With --tls it speaks TLS (OpenSSL, one SSL_CTX per worker): the handshake is driven by the same
// epoll loop, then the upgrade and the frames go through SSL_read/SSL_write. Plain mode keeps its
// code path: the TLS state lives in vectors that stay empty without --tls.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "bench_common.hpp"

namespace {

constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kMs = 1'000'000;
// Connections per worker when --processes is not given: under the 20,000 open-file cap with room
// for the epoll fd, pipes and stdio.
constexpr long kDefaultPerProcess = 18000;
// Handshakes in flight per worker: more only queues in the server's accept backlog and makes
// handshakes time out without connecting any faster.
constexpr int kMaxInFlight = 2000;
// How long the slow connections are drained at the end, looking for the server's close frame.
constexpr int64_t kDrainNs = 2 * kSec;

int64_t cpu_us_self() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return (int64_t{ru.ru_utime.tv_sec} + ru.ru_stime.tv_sec) * 1'000'000 + ru.ru_utime.tv_usec +
         ru.ru_stime.tv_usec;
}

void appendf(std::string& out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void appendf(std::string& out, const char* fmt, ...) {
  va_list ap, again;
  va_start(ap, fmt);
  va_copy(again, ap);
  char buf[512];
  const int n = std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n >= static_cast<int>(sizeof(buf))) {
    const size_t at = out.size();
    out.resize(at + static_cast<size_t>(n) + 1);
    std::vsnprintf(out.data() + at, static_cast<size_t>(n) + 1, fmt, again);
    out.resize(at + static_cast<size_t>(n));
  } else if (n > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  va_end(again);
}

// ---------------------------------------------------------------------------------------------
// Options

enum class Protocol { kOdin, kNats };

struct Options {
  std::string host = "127.0.0.1";
  std::vector<int> ports{3002};
  long connections = 1000;
  long channels = 1;
  long per_conn = 1;
  double duration_s = 10;  // after all are connected
  long expect = 0;         // data messages each non-slow connection should get (0 = unknown)
  std::string ready_file;
  long processes = 0;  // 0 = ceil(connections / 18000)
  double ramp = 0;     // new connections per second over all workers (0 = as fast as possible)
  Protocol protocol = Protocol::kOdin;
  std::string prefix = "odin.token.";
  double slow_fraction = 0;
  std::vector<int> server_pids;
  double connect_timeout_s = 30;
  std::string path;               // default "/ws" (odin) or "/" (nats-ws)
  bool tls = false;               // --tls: wss:// (TLS on the same port)
  bool tls_resume = false;        // --tls-resume: resume a TLS session instead of full handshakes
  std::string ca;                 // --ca: verify the server's certificate against this PEM file
  std::string servername;         // --servername: SNI, and the name verified with --ca
  std::string delivery;           // --delivery all|latest (empty: not given, which is all)
  double max_hz = 0;              // --max-hz (0: not given)
  std::string observe;            // --observe-nats HOST:PORT: read what is published, for staleness
  double stale_interval_s = 0.1;  // --stale-interval
  bool deflate = false;           // --deflate: offer permessage-deflate, inflate RSV1 frames

  // Derived.
  uint32_t host_addr = 0;  // network order
  bool bind_source = false;
  long slow_step = 0;
  bool latest = false;        // subscribe with a `subscribe` frame asking for latest delivery
  uint32_t observe_addr = 0;  // network order
  int observe_port = 0;
  uint32_t per_channel = 0;  // messages published per channel: expect / per_conn (0: unknown)

  bool is_slow(long gi) const { return slow_step > 0 && (gi + 1) % slow_step == 0; }
  // Hard stop: D + 60 s after the start, plus the time --ramp itself needs to open everything.
  int64_t hard_stop_ns() const {
    double s = duration_s + 60;
    if (ramp > 0) s += static_cast<double>(connections) / ramp;
    return static_cast<int64_t>(s * 1e9);
  }
};

void usage(FILE* f) {
  std::fputs(
      "usage: loadclient [options]   (--flag value or --flag=value)\n"
      "  --host A            server IPv4 address (default 127.0.0.1)\n"
      "  --port P            server port (default 3002)\n"
      "  --ports P1,P2,...   several server instances: connections round-robin over them\n"
      "  --connections N     connections (default 1000)\n"
      "  --processes K       worker processes (default ceil(N/18000))\n"
      "  --ramp R            new connections per second (default 0 = as fast as possible,\n"
      "                      at most 2000 handshakes in flight per worker)\n"
      "  --connect-timeout S seconds for a connection to be upgraded and subscribed (default 30)\n"
      "  --channels C        channels ch0..ch{C-1} (default 1)\n"
      "  --per-conn K        channels per connection: connection i gets (i+j)%C, j<K (default 1)\n"
      "  --protocol P        odin (default) or nats-ws (nats-server's WebSocket listener)\n"
      "  --prefix S          nats-ws subject prefix (default odin.token.)\n"
      "  --path S            upgrade request path (default /ws for odin, / for nats-ws)\n"
      "  --expect M          data messages each non-slow connection should receive\n"
      "  --duration D        seconds to run after all are connected (default 10); the run ends\n"
      "                      earlier when every connection has --expect messages\n"
      "  --slow-fraction F   every round(1/F)-th connection stops reading once subscribed\n"
      "  --ready-file F      written with the upgraded count once all are connected\n"
      "  --server-pid PID    server process to measure (repeatable or comma list; summed)\n"
      "  --tls               TLS (wss://); no certificate verification unless --ca is given\n"
      "  --deflate           offer permessage-deflate; inflate frames with RSV1 (per message)\n"
      "  --ca FILE           verify the server's certificate against this PEM CA file (and its\n"
      "                      name: --servername, else the --host IP address)\n"
      "  --servername NAME   SNI server name (and the name --ca checks)\n"
      "  --tls-resume        each worker makes one full handshake, then every other connection\n"
      "                      resumes its latest session ticket (default: full handshakes only)\n"
      "  --delivery D        all (default: subscribe in the URL, v1) or latest (connect without\n"
      "                      channels, then a subscribe frame with \"delivery\":\"latest\")\n"
      "  --max-hz X          with latest: \"max_hz\":X in the subscribe frame (implies latest)\n"
      "  --observe-nats H:P  subscribe to <prefix>> on this NATS server to see what is\n"
      "                      published, and sample every connection's staleness\n"
      "  --stale-interval S  seconds between staleness samples (default 0.1)\n",
      f);
}

bool to_long(const std::string& s, long& v) {
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(s.c_str(), &end, 10);
  if (errno || end == s.c_str() || *end) return false;
  v = x;
  return true;
}

bool to_double(const std::string& s, double& v) {
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(s.c_str(), &end);
  if (errno || end == s.c_str() || *end || !std::isfinite(x)) return false;
  v = x;
  return true;
}

bool to_int_list(const std::string& s, std::vector<int>& out) {
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    long v = 0;
    if (!to_long(s.substr(pos, comma - pos), v) || v <= 0 || v > 0x7fffffff) return false;
    out.push_back(static_cast<int>(v));
    pos = comma + 1;
  }
  return true;
}

bool parse_options(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string key = argv[i], value;
    if (key == "--help" || key == "-h") {
      usage(stdout);
      std::exit(0);
    }
    if (key == "--tls" || key == "--tls-resume") {  // switches: no value
      (key == "--tls" ? o.tls : o.tls_resume) = true;
      continue;
    }
    if (key == "--deflate") {
      o.deflate = true;
      continue;
    }
    const size_t eq = key.find('=');
    if (key.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = key.substr(eq + 1);
      key.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "loadclient: %s needs a value\n", key.c_str());
      return false;
    }
    bool ok = true;
    long l = 0;
    if (key == "--host") {
      o.host = value;
    } else if (key == "--port") {
      ok = to_long(value, l) && l > 0 && l < 65536;
      o.ports = {static_cast<int>(l)};
    } else if (key == "--ports") {
      o.ports.clear();
      ok = to_int_list(value, o.ports);
    } else if (key == "--connections") {
      ok = to_long(value, o.connections) && o.connections > 0;
    } else if (key == "--processes") {
      ok = to_long(value, o.processes) && o.processes > 0;
    } else if (key == "--ramp") {
      ok = to_double(value, o.ramp) && o.ramp >= 0;
    } else if (key == "--connect-timeout") {
      ok = to_double(value, o.connect_timeout_s) && o.connect_timeout_s > 0;
    } else if (key == "--channels") {
      ok = to_long(value, o.channels) && o.channels > 0 && o.channels < (1L << 31);
    } else if (key == "--per-conn") {
      ok = to_long(value, o.per_conn) && o.per_conn > 0;
    } else if (key == "--protocol") {
      if (value == "odin")
        o.protocol = Protocol::kOdin;
      else if (value == "nats-ws" || value == "nats")
        o.protocol = Protocol::kNats;
      else
        ok = false;
    } else if (key == "--prefix") {
      o.prefix = value;
    } else if (key == "--path") {
      o.path = value;
    } else if (key == "--expect") {
      ok = to_long(value, o.expect) && o.expect >= 0;
    } else if (key == "--duration") {
      ok = to_double(value, o.duration_s) && o.duration_s >= 0;
    } else if (key == "--slow-fraction") {
      ok = to_double(value, o.slow_fraction) && o.slow_fraction >= 0 && o.slow_fraction <= 1;
    } else if (key == "--ready-file") {
      o.ready_file = value;
    } else if (key == "--server-pid") {
      ok = to_int_list(value, o.server_pids);
    } else if (key == "--ca") {
      o.ca = value;
    } else if (key == "--servername") {
      o.servername = value;
    } else if (key == "--delivery") {
      ok = value == "all" || value == "latest";
      o.delivery = value;
    } else if (key == "--max-hz") {
      ok = to_double(value, o.max_hz) && o.max_hz >= 0.1 && o.max_hz <= 1000;
    } else if (key == "--observe-nats") {
      o.observe = value;
    } else if (key == "--stale-interval") {
      ok = to_double(value, o.stale_interval_s) && o.stale_interval_s >= 0.001;
    } else {
      std::fprintf(stderr, "loadclient: unknown option %s (see --help)\n", key.c_str());
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "loadclient: bad value for %s: %s\n", key.c_str(), value.c_str());
      return false;
    }
  }
  for (int p : o.ports) {
    if (p >= 65536) {
      std::fprintf(stderr, "loadclient: bad port %d\n", p);
      return false;
    }
  }
  if (o.per_conn > o.channels) {
    std::fprintf(stderr, "loadclient: --per-conn %ld > --channels %ld\n", o.per_conn, o.channels);
    return false;
  }
  in_addr a{};
  if (inet_pton(AF_INET, o.host.c_str(), &a) != 1) {
    std::fprintf(stderr, "loadclient: --host must be an IPv4 address: %s\n", o.host.c_str());
    return false;
  }
  o.host_addr = a.s_addr;
  // Many source addresses only make sense (and only route) when the server is on loopback.
  o.bind_source = (ntohl(a.s_addr) >> 24) == 127;
  if (o.path.empty()) o.path = o.protocol == Protocol::kOdin ? "/ws" : "/";
  if ((o.tls_resume || !o.ca.empty() || !o.servername.empty()) && !o.tls) {
    std::fprintf(stderr, "loadclient: --tls-resume, --ca and --servername need --tls\n");
    return false;
  }
  if (o.max_hz > 0 && o.delivery == "all") {
    std::fprintf(stderr, "loadclient: --max-hz needs --delivery latest (a rate implies latest)\n");
    return false;
  }
  o.latest = o.delivery == "latest" || o.max_hz > 0;
  if (o.latest && o.protocol != Protocol::kOdin) {
    std::fprintf(stderr, "loadclient: --delivery latest and --max-hz need --protocol odin\n");
    return false;
  }
  if (o.expect > 0 && o.expect % o.per_conn == 0)
    o.per_channel = static_cast<uint32_t>(o.expect / o.per_conn);
  if (o.latest && o.expect > 0 && o.per_channel == 0) {
    std::fprintf(stderr, "loadclient: with latest, --expect must be a multiple of --per-conn\n");
    return false;
  }
  if (!o.observe.empty()) {
    const size_t colon = o.observe.rfind(':');
    long port = 0;
    in_addr oa{};
    if (colon == std::string::npos || !to_long(o.observe.substr(colon + 1), port) || port <= 0 ||
        port > 65535 || inet_pton(AF_INET, o.observe.substr(0, colon).c_str(), &oa) != 1) {
      std::fprintf(stderr, "loadclient: --observe-nats wants IPv4:PORT: %s\n", o.observe.c_str());
      return false;
    }
    o.observe_addr = oa.s_addr;
    o.observe_port = static_cast<int>(port);
  }
  if (o.slow_fraction > 0) o.slow_step = std::max(1L, std::lround(1.0 / o.slow_fraction));
  if (o.processes == 0) o.processes = (o.connections + kDefaultPerProcess - 1) / kDefaultPerProcess;
  o.processes = std::min(o.processes, o.connections);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Histograms: HDR-style log-linear buckets over microseconds. Values below 2^kSubBits us have
// 1 us buckets; above, every power of two is split into 2^(kSubBits-1) equal buckets, so a bucket
// is at most 1/2^(kSubBits-1) of its value wide and its middle is within half that. Tops out at
// 2^28 us (268 s); the exact max is kept on the side. Fixed size, merged by adding.

template <int kSubBits>
struct LogHist {
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kHalf = kSub / 2;
  static constexpr int kTopBit = 27;
  static constexpr int kShifts = kTopBit - (kSubBits - 1);
  static constexpr int kBuckets = kSub + kShifts * kHalf;

  std::array<uint64_t, kBuckets> counts{};
  uint64_t total = 0;
  int64_t max_ns = 0;

  static int index(uint64_t us) {
    if (us < static_cast<uint64_t>(kSub)) return static_cast<int>(us);
    const int msb = 63 - __builtin_clzll(us);
    const int shift = msb - (kSubBits - 1);
    if (shift > kShifts) return kBuckets - 1;
    return kSub + (shift - 1) * kHalf + static_cast<int>((us >> shift) - kHalf);
  }
  static double mid_us(int i) {
    if (i < kSub) return i + 0.5;
    const int k = i - kSub;
    const int shift = k / kHalf + 1;
    const double low = static_cast<double>(static_cast<uint64_t>(kHalf + k % kHalf) << shift);
    return low + static_cast<double>(uint64_t{1} << shift) / 2;
  }
  void add(int64_t ns) {
    if (ns < 0) ns = 0;  // clocks of publisher and client are the same CLOCK_REALTIME
    ++counts[static_cast<size_t>(index(static_cast<uint64_t>(ns) / 1000))];
    ++total;
    max_ns = std::max(max_ns, ns);
  }
  void merge(const LogHist& o) {
    for (int i = 0; i < kBuckets; ++i)
      counts[static_cast<size_t>(i)] += o.counts[static_cast<size_t>(i)];
    total += o.total;
    max_ns = std::max(max_ns, o.max_ns);
  }
  double quantile_ms(double q) const {
    if (total == 0) return 0;
    const double max_ms = static_cast<double>(max_ns) / 1e6;
    if (q >= 1) return max_ms;
    const uint64_t rank =
        std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(total))));
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts[static_cast<size_t>(i)];
      if (seen >= rank) return std::min(mid_us(i) / 1e3, max_ms);
    }
    return max_ms;
  }
};

using LatHist = LogHist<8>;   // <= 0.4% error, 2,816 counters
using TimeHist = LogHist<5>;  // per second of the timeline: <= 3% error, 400 counters

// ---------------------------------------------------------------------------------------------
// Reach-all bookkeeping: one entry per message (not per delivery), keyed by channel and the
// publisher's counter "n" (or its timestamp "t" when there is no n).

struct MsgKey {
  uint64_t id;
  uint32_t channel;
  bool operator==(const MsgKey&) const = default;
};
struct MsgKeyHash {
  size_t operator()(const MsgKey& k) const noexcept {
    uint64_t x = k.id ^ (uint64_t{k.channel} * 0x9E3779B97F4A7C15ull);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return static_cast<size_t>(x);
  }
};
struct MsgStat {
  int64_t t = 0;
  int64_t last_ns = 0;
  uint64_t count = 0;
};
using MsgMap = std::unordered_map<MsgKey, MsgStat, MsgKeyHash>;

// ---------------------------------------------------------------------------------------------
// What has been published (--observe-nats): the parent reads every message from NATS, as the
// gateway does, and writes per channel the newest counter n seen and each message's publish time
// t into memory it maps shared before forking, so that every worker can tell, for the value a
// connection holds, whether a newer one exists and since when (staleness). Times are kept in a
// ring of `cap` slots per channel, indexed by n % cap: with --expect, cap covers every message.

static_assert(std::atomic<int64_t>::is_always_lock_free &&
                  std::atomic<uint32_t>::is_always_lock_free,
              "the board is shared between processes: its atomics must be lock-free");

struct PubBoard {
  uint32_t channels = 0;
  uint32_t cap = 0;
  std::atomic<int64_t>* first_ns = nullptr;  // when the first message was seen (0: none yet)
  std::atomic<uint32_t>* done = nullptr;     // 1 once every channel has its last message
  std::atomic<uint32_t>* newest = nullptr;   // per channel: the highest n seen
  std::atomic<int64_t>* t = nullptr;         // per channel: cap publish times, by n % cap

  bool map(uint32_t nchannels, uint32_t slots) {
    channels = nchannels;
    cap = slots;
    const size_t head = 16 + (size_t{channels} * 4 + 7) / 8 * 8;
    const size_t bytes = head + size_t{channels} * cap * 8;
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return false;
    auto* base = static_cast<char*>(m);  // zero-filled: every atomic starts at 0
    first_ns = new (base) std::atomic<int64_t>(0);
    done = new (base + 8) std::atomic<uint32_t>(0);
    newest = reinterpret_cast<std::atomic<uint32_t>*>(base + 16);
    t = reinterpret_cast<std::atomic<int64_t>*>(base + head);
    return true;
  }
  uint32_t newest_n(uint32_t c) const { return newest[c].load(std::memory_order_acquire); }
  int64_t time_of(uint32_t c, uint32_t n) const {
    return t[size_t{c} * cap + n % cap].load(std::memory_order_relaxed);
  }
  // One writer (the parent); n of a channel arrive in order from NATS.
  void record(uint32_t c, uint32_t n, int64_t when) {
    t[size_t{c} * cap + n % cap].store(when, std::memory_order_relaxed);
    if (n > newest[c].load(std::memory_order_relaxed))
      newest[c].store(n, std::memory_order_release);
  }
};

// ---------------------------------------------------------------------------------------------
// Worker <-> parent messages over pipes: {uint32 type, uint32 length} then the payload.

enum MsgType : uint32_t { kReady = 1, kDone = 2, kResult = 3, kGo = 4, kStop = 5 };

struct ReadyInfo {
  uint64_t upgraded = 0;
  uint64_t failed = 0;
  int64_t first_connect_ns = 0;
  int64_t last_upgrade_ns = 0;
  int64_t ready_ns = 0;
};

// Everything a worker reports that is a plain number.
struct Totals {
  uint64_t upgraded = 0;  // upgraded and subscribed (slow ones included)
  uint64_t failed = 0;    // never got there
  uint64_t slow = 0;      // slow connections among the upgraded
  uint64_t closed = 0;    // non-slow connections the server closed afterwards
  uint64_t received = 0;  // data messages on non-slow connections
  uint64_t gaps = 0;
  uint64_t dups = 0;
  uint64_t before_connected = 0;  // deliveries before everyone was connected
  uint64_t nats_errors = 0;       // -ERR lines
  int64_t first_connect_ns = 0;
  int64_t last_upgrade_ns = 0;
  int64_t ready_ns = 0;
  int64_t cpu_window_us = 0;    // this worker's CPU between all-connected and the stop
  int64_t cpu_connect_us = 0;   // this worker's CPU from its start to all its connections resolved
  uint64_t tls_handshakes = 0;  // TLS handshakes completed
  uint64_t tls_resumed = 0;     // of which resumed a session
  // Per (connection, channel) checks, with --delivery latest or --observe-nats (non-slow only).
  uint64_t conflated = 0;           // sum of the envelopes' "conflated"
  uint64_t conflated_frames = 0;    // data frames that carried one
  uint64_t conflated_mismatch = 0;  // frames where n - previous n - 1 != conflated
  uint64_t order_errors = 0;        // frames whose n was not above the previous one's
  uint64_t foreign = 0;             // frames of a channel the connection did not subscribe to
  uint64_t final_slots = 0;         // at the end, (open connection, channel) pairs checked
  // Data frames (opcodes 0-2) as read: payload bytes on the wire, and with --deflate the frames
  // with RSV1 set and the bytes they inflated to.
  uint64_t wire_frames = 0;
  uint64_t wire_payload_bytes = 0;
  uint64_t compressed_frames = 0;
  uint64_t compressed_wire_bytes = 0;
  uint64_t inflated_bytes = 0;
  uint64_t inflate_errors = 0;
  uint64_t final_newest = 0;   // of which hold the last message published
  uint64_t final_short = 0;    // received + conflated < published
  uint64_t final_over = 0;     // received + conflated > published
  uint64_t stale_rounds = 0;   // staleness sampling passes
  uint64_t stale_clamped = 0;  // samples older than the board's window (a lower bound)
  uint64_t stale_unknown = 0;  // samples whose next message's time was not on the board
};

struct Writer {
  std::vector<char> b;
  template <class T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const char* p = reinterpret_cast<const char*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
  }
  void put_str(std::string_view s) {
    put(static_cast<uint32_t>(s.size()));
    b.insert(b.end(), s.begin(), s.end());
  }
};

struct Reader {
  const char* p;
  const char* end;
  bool ok = true;
  template <class T>
  T get() {
    T v{};
    if (static_cast<size_t>(end - p) < sizeof(T)) {
      ok = false;
      return v;
    }
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    return v;
  }
  template <class T>
  void get_into(T& v) {
    if (static_cast<size_t>(end - p) < sizeof(T)) {
      ok = false;
      return;
    }
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
  }
  std::string get_str() {
    const uint32_t n = get<uint32_t>();
    if (!ok || static_cast<size_t>(end - p) < n) {
      ok = false;
      return {};
    }
    std::string s(p, n);
    p += n;
    return s;
  }
};

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd pf{fd, POLLOUT, 0};
        poll(&pf, 1, 100);
        continue;
      }
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool send_msg(int fd, uint32_t type, const void* data, size_t len) {
  uint32_t head[2] = {type, static_cast<uint32_t>(len)};
  return write_all(fd, reinterpret_cast<const char*>(head), sizeof(head)) &&
         write_all(fd, static_cast<const char*>(data), len);
}

// Pulls complete messages out of a byte buffer fed from a pipe.
template <class F>
void take_msgs(std::vector<char>& buf, F&& on_msg) {
  size_t pos = 0;
  while (buf.size() - pos >= 8) {
    uint32_t head[2];
    std::memcpy(head, buf.data() + pos, 8);
    if (buf.size() - pos - 8 < head[1]) break;
    on_msg(head[0], buf.data() + pos + 8, static_cast<size_t>(head[1]));
    pos += 8 + head[1];
  }
  buf.erase(buf.begin(), buf.begin() + static_cast<long>(pos));
}

// Close codes: WebSocket codes as they are, and these for the other ways a connection ends.
constexpr int32_t kCodeNone = 0;       // still open (nothing seen)
constexpr int32_t kCodeEof = -1;       // EOF without a close frame
constexpr int32_t kCodeReset = -2;     // read/write error (ECONNRESET...)
constexpr int32_t kCodeBadFrame = -3;  // unparseable frame from the server

std::string code_name(int32_t code) {
  switch (code) {
    case kCodeNone:
      return "none";
    case kCodeEof:
      return "eof";
    case kCodeReset:
      return "reset";
    case kCodeBadFrame:
      return "bad_frame";
    default:
      return std::to_string(code);
  }
}

// ---------------------------------------------------------------------------------------------
// Small parsing helpers (the payloads are parsed in place).

bool starts_with(const char* p, size_t n, std::string_view s) {
  return n >= s.size() && std::memcmp(p, s.data(), s.size()) == 0;
}

// Decimal digits at p; advances p. False when there are none.
bool parse_u64(const char*& p, const char* end, uint64_t& v) {
  const char* start = p;
  uint64_t x = 0;
  while (p < end && *p >= '0' && *p <= '9')
    x = x * 10 + static_cast<uint64_t>(*p++ - '0');
  v = x;
  return p != start;
}

const char* find(const char* p, const char* end, std::string_view s) {
  if (p >= end) return nullptr;
  return static_cast<const char*>(memmem(p, static_cast<size_t>(end - p), s.data(), s.size()));
}

const char* skip_spaces(const char* p, const char* end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    ++p;
  return p;
}

// The publisher's data object starts {"t":<unix ns>,"n":<counter>, ... (maybe with spaces, as
// Python's json.dumps writes it); the exact prefix is tried first, then a search.
bool parse_tn(const char* p, const char* end, int64_t& t, uint64_t& n, bool& has_n) {
  has_n = false;
  uint64_t v = 0;
  const char* q = starts_with(p, static_cast<size_t>(end - p), "{\"t\":") ? p + 5 : nullptr;
  if (!q) {
    q = find(p, end, "\"t\":");
    if (!q) return false;
    q += 4;
  }
  q = skip_spaces(q, end);
  if (!parse_u64(q, end, v)) return false;
  t = static_cast<int64_t>(v);
  const char* r = starts_with(q, static_cast<size_t>(end - q), ",\"n\":") ? q + 5 : nullptr;
  if (!r) {
    r = find(q, end, "\"n\":");
    if (r) r += 4;
  }
  if (r) r = skip_spaces(r, end);
  if (r && parse_u64(r, end, v)) {
    n = v;
    has_n = true;
  }
  return true;
}

bool ieq_prefix(const char* p, size_t n, std::string_view s) {
  if (n < s.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = p[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != s[i]) return false;
  }
  return true;
}

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Sec-WebSocket-Key of connection gi (derived from gi, so nothing is stored per connection) and
// the Sec-WebSocket-Accept the server must answer with.
void ws_key(long gi, char key[25]) {
  unsigned char raw[16];
  const uint64_t a = splitmix(static_cast<uint64_t>(gi)), b = splitmix(a);
  std::memcpy(raw, &a, 8);
  std::memcpy(raw + 8, &b, 8);
  EVP_EncodeBlock(reinterpret_cast<unsigned char*>(key), raw, 16);
}

void ws_accept(const char key[25], char accept[29]) {
  char in[24 + 36];
  std::memcpy(in, key, 24);
  std::memcpy(in + 24, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
  unsigned char sha[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in), sizeof(in), sha);
  EVP_EncodeBlock(reinterpret_cast<unsigned char*>(accept), sha, SHA_DIGEST_LENGTH);
}

// Header length of the frame at p when all of it is there (payload length in len), else 0.
size_t frame_header(const unsigned char* p, size_t n, uint64_t& len) {
  if (n < 2) return 0;
  size_t h = 2;
  len = p[1] & 0x7f;
  if (len == 126) {
    if (n < 4) return 0;
    len = (uint64_t{p[2]} << 8) | p[3];
    h = 4;
  } else if (len == 127) {
    if (n < 10) return 0;
    len = 0;
    for (int i = 0; i < 8; ++i)
      len = (len << 8) | p[2 + i];
    h = 10;
  }
  if (p[1] & 0x80) h += 4;
  return n >= h ? h : 0;
}

// Header bytes needed, knowing only what is in p[0..n).
size_t header_need(const unsigned char* p, size_t n) {
  if (n < 2) return 2;
  const unsigned l = p[1] & 0x7f;
  return 2 + (l == 126 ? 2 : l == 127 ? 8 : 0) + ((p[1] & 0x80) ? 4 : 0);
}

volatile sig_atomic_t g_stop = 0;

void install_signals() {
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

// ---------------------------------------------------------------------------------------------
// Worker: a contiguous slice [lo, hi) of the connections, one epoll loop.

// kTlsHandshake only with --tls: TCP connected, TLS handshake under way; kHandshake is the
// WebSocket upgrade.
enum Phase : uint8_t {
  kIdle,
  kConnecting,
  kTlsHandshake,
  kHandshake,
  kUpgraded,
  kOpen,
  kClosed,
  kFailed
};

bool in_flight(Phase p) {
  return p == kConnecting || p == kTlsHandshake || p == kHandshake || p == kUpgraded;
}

// Only allocated while a connection holds a partial frame (or a partial NATS command).
struct Partial {
  std::string ws;
  std::string nats;
};

struct Conn {
  std::unique_ptr<Partial> partial;
  uint64_t last_seq = 0;  // odin: last seq seen
  uint64_t received = 0;
  int fd = -1;
  uint32_t started_ms = 0;  // connect() time, ms since the worker started (handshake timeout)
  int32_t close_code = kCodeNone;
  Phase phase = kIdle;
  bool slow = false;
  bool stopped_reading = false;
};

// 100,000 connections must fit easily next to the server being measured.
static_assert(sizeof(Conn) <= 40);

constexpr uint32_t kCtlTag = 0xffffffff;

class Worker {
 public:
  Worker(const Options& o, long lo, long hi, int to_parent, int from_parent, int64_t t0,
         const PubBoard* board)
      : o_(o),
        board_(board),
        lo_(lo),
        n_(static_cast<size_t>(hi - lo)),
        to_parent_(to_parent),
        from_parent_(from_parent),
        t0_(t0),
        conns_(n_),
        scratch_(1 << 18),
        subs_(static_cast<size_t>(o.channels), 0) {
    if (o_.protocol == Protocol::kNats) last_n_.assign(n_ * static_cast<size_t>(o_.per_conn), kNoN);
    if (o_.latest ||
        board_) {  // per (connection, channel): the newest n held, received + conflated
      held_.assign(n_ * static_cast<size_t>(o_.per_conn), 0);
      acc_.assign(n_ * static_cast<size_t>(o_.per_conn), 0);
    }
    stale_interval_ns_ = static_cast<int64_t>(o_.stale_interval_s * 1e9);
    if (o_.tls) {
      ssl_.assign(n_, nullptr);
      tls_t0_.assign(n_, 0);
    }
    const uint64_t hint =
        o_.expect > 0 ? static_cast<uint64_t>(o_.expect) * static_cast<uint64_t>(o_.channels)
                      : 1u << 16;
    msgs_.reserve(static_cast<size_t>(std::min<uint64_t>(hint, 1u << 20)));
    rng_ = splitmix(static_cast<uint64_t>(bench::realtime_ns()) ^ static_cast<uint64_t>(getpid()));
    ramp_ = o_.ramp > 0 ? o_.ramp / static_cast<double>(o_.processes) : 0;
    timeline_cap_ = static_cast<size_t>(o_.hard_stop_ns() / kSec) + 10;
  }

  [[noreturn]] void run() {
    if (o_.tls && !tls_init()) _exit(3);
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = kCtlTag;
    fcntl(from_parent_, F_SETFL, O_NONBLOCK);
    epoll_ctl(ep_, EPOLL_CTL_ADD, from_parent_, &ev);
    start_ns_ = bench::realtime_ns();
    const int64_t hard_stop = t0_ + o_.hard_stop_ns() + 5 * kSec;  // the parent stops us first
    std::vector<epoll_event> events(1024);
    int64_t next_timeout_check = 0;
    while (!stop_ && !g_stop) {
      int64_t now = bench::realtime_ns();
      if (now > hard_stop) break;
      open_due(now);
      if (!ready_sent_ && next_ == n_ && inflight_ == 0) {
        ReadyInfo r{t_.upgraded, t_.failed, t_.first_connect_ns, t_.last_upgrade_ns, now};
        t_.ready_ns = now;
        t_.cpu_connect_us = cpu_us_self();
        send_msg(to_parent_, kReady, &r, sizeof(r));
        ready_sent_ = true;
      }
      if (ready_sent_ && o_.expect > 0 && !done_sent_ && pending_ == 0) {
        send_msg(to_parent_, kDone, nullptr, 0);
        done_sent_ = true;
      }
      int timeout_ms = 100;
      if (board_)
        timeout_ms = static_cast<int>(std::clamp<int64_t>(stale_interval_ns_ / kMs, 1, 100));
      if (next_ < n_ && ramp_ > 0) {
        const int64_t due =
            start_ns_ + static_cast<int64_t>(static_cast<double>(next_) * 1e9 / ramp_);
        timeout_ms = static_cast<int>(std::clamp<int64_t>((due - now) / kMs + 1, 0, 100));
      }
      const int nev = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), timeout_ms);
      for (int e = 0; e < nev; ++e) {
        const epoll_event& x = events[static_cast<size_t>(e)];
        if (x.data.u32 == kCtlTag) {
          read_control();
          continue;
        }
        on_event(x.data.u32, x.events);
        // A busy loop (a thousand sockets with data) must not starve the staleness samples.
        if (board_ && t_all_ > 0 && (e & 63) == 63) {
          const int64_t t = bench::realtime_ns();
          if (t >= next_stale_ns_) {
            sample_staleness(t);
            next_stale_ns_ = t + stale_interval_ns_;
          }
        }
      }
      now = bench::realtime_ns();
      if (inflight_ > 0 && now >= next_timeout_check) {
        check_timeouts(now);
        next_timeout_check = now + 250 * kMs;
      }
      if (board_ && t_all_ > 0 && now >= next_stale_ns_) {
        sample_staleness(now);
        next_stale_ns_ = now + stale_interval_ns_;
      }
    }
    if (t_all_ > 0) t_.cpu_window_us = cpu_us_self() - cpu_go_us_;
    // Whatever was still connecting when the run ended never made it.
    for (size_t ci = 0; ci < n_; ++ci) {
      const Phase p = conns_[ci].phase;
      if (p == kIdle || in_flight(p)) fail(static_cast<uint32_t>(ci), "unfinished");
    }
    drain_slow();
    final_check();
    send_result();
    _exit(0);
  }

 private:
  static constexpr uint32_t kNoN = 0xffffffff;

  long gi(uint32_t ci) const { return lo_ + static_cast<long>(ci); }
  uint32_t channel_of(uint32_t ci, long j) const {
    return static_cast<uint32_t>((gi(ci) + j) % o_.channels);
  }
  // j such that channel_of(ci, j) == ch, or -1 when connection ci is not on channel ch.
  long slot_in(uint32_t ci, uint32_t ch) const {
    const long c = o_.channels;
    const long j = ((static_cast<long>(ch) - gi(ci) % c) % c + c) % c;
    return j < o_.per_conn ? j : -1;
  }
  size_t slot(uint32_t ci, long j) const {
    return static_cast<size_t>(ci) * static_cast<size_t>(o_.per_conn) + static_cast<size_t>(j);
  }
  // With latest, a connection is done when each of its channels has received + conflated equal
  // to what was published on it: the (connection, channel) pairs still short of it.
  long short_slots(uint32_t ci) const {
    long k = 0;
    for (long j = 0; j < o_.per_conn; ++j)
      k += acc_[slot(ci, j)] < o_.per_channel;
    return k;
  }

  void open_due(int64_t now) {
    while (next_ < n_ && inflight_ < kMaxInFlight) {
      // --tls-resume: the first connection's full handshake brings the ticket the rest resume.
      if (o_.tls_resume && next_ > 0 && !tls_session_ && in_flight(conns_[0].phase)) break;
      if (ramp_ > 0 &&
          now < start_ns_ + static_cast<int64_t>(static_cast<double>(next_) * 1e9 / ramp_))
        break;
      open_conn(static_cast<uint32_t>(next_++), now);
    }
  }

  void open_conn(uint32_t ci, int64_t now) {
    Conn& c = conns_[ci];
    const long g = gi(ci);
    c.slow = o_.is_slow(g);
    c.started_ms = static_cast<uint32_t>((now - start_ns_) / kMs);
    c.phase = kConnecting;
    ++inflight_;
    if (!tls_t0_.empty()) tls_t0_[ci] = now;
    if (t_.first_connect_ns == 0) t_.first_connect_ns = now;
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) return fail(ci, errno == EMFILE || errno == ENFILE ? "emfile" : "socket");
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (o_.bind_source) {
      // 253 source addresses, each with its own ephemeral port range; the port is picked at
      // connect() time for the whole 4-tuple (IP_BIND_ADDRESS_NO_PORT), not at bind().
      setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
      sockaddr_in src{};
      src.sin_family = AF_INET;
      src.sin_addr.s_addr = htonl(0x7f000002 + static_cast<uint32_t>(g % 253));
      if (bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) return fail(ci, "bind");
    }
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(static_cast<uint16_t>(o_.ports[static_cast<size_t>(g) % o_.ports.size()]));
    dst.sin_addr.s_addr = o_.host_addr;
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)) != 0 && errno != EINPROGRESS)
      return fail(ci, "connect");
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u32 = ci;
    epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
  }

  void on_event(uint32_t ci, uint32_t events) {
    Conn& c = conns_[ci];
    if (c.phase == kConnecting) {
      if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(ci);
      return;
    }
    if (c.phase == kTlsHandshake) return tls_handshake(ci);
    if ((events & EPOLLOUT) && !ssl_.empty() && c.fd >= 0 && !tls_flush(ci))
      return lost(ci, kCodeReset);
    if (c.fd >= 0 && !c.stopped_reading && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
      on_readable(ci, false);
  }

  void on_connected(uint32_t ci) {
    Conn& c = conns_[ci];
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
      return fail(ci, "connect");
    if (!ssl_.empty()) return tls_start(ci);
    send_upgrade(ci);
  }

  // The WebSocket upgrade request (over TLS once its handshake is done).
  void send_upgrade(uint32_t ci) {
    Conn& c = conns_[ci];
    const long g = gi(ci);
    const int port = o_.ports[static_cast<size_t>(g) % o_.ports.size()];
    char key[25], buf[128];
    ws_key(g, key);
    std::string& req = out_;
    req.clear();
    req.append("GET ").append(o_.path);
    if (o_.protocol == Protocol::kOdin && !o_.latest) {  // latest: a subscribe frame instead
      req.append(o_.path.find('?') == std::string::npos ? "?channels=" : "&channels=");
      for (long j = 0; j < o_.per_conn; ++j) {
        std::snprintf(buf, sizeof(buf), "%sch%u", j ? "," : "", channel_of(ci, j));
        req.append(buf);
      }
    }
    std::snprintf(buf, sizeof(buf), " HTTP/1.1\r\nHost: %s:%d\r\n", o_.host.c_str(), port);
    req.append(buf);
    req.append("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
    req.append("Sec-WebSocket-Key: ").append(key, 24).append("\r\n");
    if (o_.deflate)
      req.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    req.append("\r\n");
    if (!ssl_.empty()) {
      if (!tls_write(ci, req.data(), req.size())) return fail(ci, "write");
    } else if (write(c.fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
      return fail(ci, "write");
    }
    c.phase = kHandshake;
    watch(ci, EPOLLIN | (!ssl_.empty() && tls_out_.count(ci) ? uint32_t{EPOLLOUT} : 0u));
  }

  void watch(uint32_t ci, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u32 = ci;
    epoll_ctl(ep_, EPOLL_CTL_MOD, conns_[ci].fd, &ev);
  }

  void on_readable(uint32_t ci, bool draining) {
    if (!ssl_.empty()) return on_readable_tls(ci, draining);
    Conn& c = conns_[ci];
    for (;;) {
      const ssize_t r = read(c.fd, scratch_.data(), scratch_.size());
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) lost(ci, kCodeReset);
        break;
      }
      if (r == 0) {
        lost(ci, kCodeEof);
        break;
      }
      // The delivery time of every frame completed by this read.
      const int64_t t_read = bench::realtime_ns();
      const bool alive = feed(ci, scratch_.data(), static_cast<size_t>(r), t_read);
      if (!alive) break;
      if (c.slow && c.phase == kOpen && !c.stopped_reading) {
        // A slow consumer: from now on the server's data piles up in its queue.
        epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
        c.stopped_reading = true;
      }
      if (c.stopped_reading && !draining) break;
      if (static_cast<size_t>(r) < scratch_.size()) break;
    }
    // The partial buffers go back once they are empty or the connection is gone.
    if (c.partial && (c.fd < 0 || (c.partial->ws.empty() && c.partial->nats.empty())))
      c.partial.reset();
  }

  // Connection ended by EOF or error.
  void lost(uint32_t ci, int32_t code) {
    Conn& c = conns_[ci];
    if (c.phase == kOpen)
      close_conn(ci, code);
    else if (c.phase != kClosed && c.phase != kFailed)
      fail(ci, code == kCodeEof ? "eof" : "reset");
  }

  void fail(uint32_t ci, const char* reason) {
    Conn& c = conns_[ci];
    if (in_flight(c.phase)) --inflight_;
    if (!ssl_.empty()) tls_release(ci);
    if (c.fd >= 0) close(c.fd);
    c.fd = -1;
    c.phase = kFailed;
    ++t_.failed;
    ++failures_[reason];
  }

  // A subscribed connection ends (the server closed it, or it broke).
  void close_conn(uint32_t ci, int32_t code) {
    Conn& c = conns_[ci];
    if (c.phase != kOpen) {
      fail(ci, code > 0 ? "closed" : code == kCodeEof ? "eof" : "reset");
      return;
    }
    if (c.close_code == kCodeNone) c.close_code = code;
    if (!c.slow) {
      ++t_.closed;
      ++close_codes_[code];
      if (o_.latest) {
        if (o_.expect > 0) pending_ -= short_slots(ci);
      } else if (o_.expect > 0 && c.received < static_cast<uint64_t>(o_.expect)) {
        --pending_;
      }
    }
    if (!ssl_.empty()) tls_release(ci);
    close(c.fd);
    c.fd = -1;
    c.phase = kClosed;
  }

  void mark_open(uint32_t ci) {
    Conn& c = conns_[ci];
    c.phase = kOpen;
    --inflight_;
    ++t_.upgraded;
    if (c.slow) {
      ++t_.slow;
      return;
    }
    for (long j = 0; j < o_.per_conn; ++j)
      ++subs_[channel_of(ci, j)];
    if (o_.latest) {
      if (o_.expect > 0) pending_ += short_slots(ci);
    } else if (o_.expect > 0 && c.received < static_cast<uint64_t>(o_.expect)) {
      ++pending_;
    }
  }

  // Bytes read from connection ci. False when the connection is gone.
  bool feed(uint32_t ci, char* p, size_t n, int64_t t_read) {
    Conn& c = conns_[ci];
    if (c.phase == kHandshake) {
      if (c.partial && !c.partial->ws.empty()) {
        // The head came in pieces: collect it, then go on with a copy of what follows it.
        std::string& ws = c.partial->ws;
        ws.append(p, n);
        const size_t end = ws.find("\r\n\r\n");
        if (end == std::string::npos) {
          if (ws.size() > 16384) fail(ci, "bad_response");
          return c.phase == kHandshake;
        }
        std::string rest = ws.substr(end + 4);
        ws.resize(end + 4);
        if (!handshake(ci, ws.data(), end + 4, t_read)) return false;
        c.partial->ws.clear();
        return frames(ci, rest.data(), rest.size(), t_read);
      }
      const char* e = find(p, p + n, "\r\n\r\n");
      if (!e) {
        if (!c.partial) c.partial = std::make_unique<Partial>();
        c.partial->ws.assign(p, n);
        return true;
      }
      const size_t head = static_cast<size_t>(e - p) + 4;
      if (!handshake(ci, p, head, t_read)) return false;
      p += head;
      n -= head;
    }
    return frames(ci, p, n, t_read);
  }

  // The server's answer to the upgrade request.
  bool handshake(uint32_t ci, const char* p, size_t n, int64_t now) {
    Conn& c = conns_[ci];
    if (!starts_with(p, n, "HTTP/1.1 101")) {
      char reason[16] = "bad_response";
      if (starts_with(p, n, "HTTP/1.") && n >= 12)
        std::snprintf(reason, sizeof(reason), "%.3s", p + 9);
      fail(ci, reason);
      return false;
    }
    char key[25], accept[29];
    ws_key(gi(ci), key);
    ws_accept(key, accept);
    bool accepted = false;
    for (const char* line = p; line && line < p + n;) {
      const char* eol = find(line, p + n, "\r\n");
      if (!eol) break;
      if (ieq_prefix(line, static_cast<size_t>(eol - line), "sec-websocket-accept:")) {
        const char* v = line + 21;
        while (v < eol && *v == ' ')
          ++v;
        accepted = eol - v >= 28 && std::memcmp(v, accept, 28) == 0;
      }
      line = eol + 2;
    }
    if (!accepted) {
      fail(ci, "bad_accept");
      return false;
    }
    c.phase = kUpgraded;
    t_.last_upgrade_ns = std::max(t_.last_upgrade_ns, now);
    if (o_.protocol == Protocol::kOdin && o_.latest) {
      // Connected without channels; subscribed once the `subscribed` reply echoes the delivery.
      std::string& cmd = nats_cmd_;
      cmd.assign("{\"type\":\"subscribe\",\"data\":{\"channels\":[");
      char buf[64];
      for (long j = 0; j < o_.per_conn; ++j) {
        std::snprintf(buf, sizeof(buf), "%s\"ch%u\"", j ? "," : "", channel_of(ci, j));
        cmd.append(buf);
      }
      cmd.append("],\"delivery\":\"latest\"");
      if (o_.max_hz > 0) {
        std::snprintf(buf, sizeof(buf), ",\"max_hz\":%.15g", o_.max_hz);
        cmd.append(buf);
      }
      cmd.append("}}");
      if (!send_frame(ci, 0x1, cmd.data(), cmd.size())) {
        fail(ci, "write");
        return false;
      }
    }
    if (o_.protocol == Protocol::kNats) {
      // Subscribed once the server has answered the PING that follows the SUBs. "headers":true
      // as a browser nats.ws client declares it: header-carrying messages arrive as HMSG.
      std::string& cmd = nats_cmd_;
      cmd.assign(
          "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"headers\":true}\r\n");
      char buf[64];
      for (long j = 0; j < o_.per_conn; ++j) {
        cmd.append("SUB ").append(o_.prefix);
        std::snprintf(buf, sizeof(buf), "ch%u %ld\r\n", channel_of(ci, j), j + 1);
        cmd.append(buf);
      }
      cmd.append("PING\r\n");
      if (!send_frame(ci, 0x2, cmd.data(), cmd.size())) {
        fail(ci, "write");
        return false;
      }
    }
    return true;
  }

  // WebSocket frames. The frame left incomplete by the previous read is completed first (only
  // the bytes it needs are copied), then the rest is parsed in place.
  bool frames(uint32_t ci, char* p, size_t n, int64_t t_read) {
    Conn& c = conns_[ci];
    if (c.partial && !c.partial->ws.empty()) {
      std::string& ws = c.partial->ws;
      for (;;) {
        uint64_t len = 0;
        const auto* u = reinterpret_cast<const unsigned char*>(ws.data());
        const size_t h = frame_header(u, ws.size(), len);
        if (h && len > (64u << 20)) {
          close_conn(ci, kCodeBadFrame);
          return false;
        }
        if (h && ws.size() >= h + len) {
          if (!on_frame(ci, ws.data(), h, len, t_read)) return false;
          c.partial->ws.clear();
          break;
        }
        if (n == 0) return true;
        const size_t want = h ? h + len - ws.size() : header_need(u, ws.size()) - ws.size();
        const size_t take = std::min(want, n);
        ws.append(p, take);
        p += take;
        n -= take;
      }
    }
    for (;;) {
      uint64_t len = 0;
      const size_t h = frame_header(reinterpret_cast<const unsigned char*>(p), n, len);
      if (h && len > (64u << 20)) {
        close_conn(ci, kCodeBadFrame);
        return false;
      }
      if (!h || n - h < len) break;
      if (!on_frame(ci, p, h, len, t_read)) return false;
      p += h + len;
      n -= h + len;
    }
    if (n > 0) {
      if (!c.partial) c.partial = std::make_unique<Partial>();
      c.partial->ws.assign(p, n);
    }
    return true;
  }

  bool on_frame(uint32_t ci, char* f, size_t h, uint64_t len, int64_t t_read) {
    const auto b0 = static_cast<unsigned char>(f[0]);
    char* payload = f + h;
    if (static_cast<unsigned char>(f[1]) & 0x80) {  // servers must not mask, but be lenient
      const char* mask = payload - 4;
      for (uint64_t i = 0; i < len; ++i)
        payload[i] = static_cast<char>(payload[i] ^ mask[i & 3]);
    }
    const size_t n = static_cast<size_t>(len);
    switch (b0 & 0x0f) {
      case 0x8: {  // close: the first two payload bytes are the code, big-endian
        const int32_t code = n >= 2 ? (static_cast<unsigned char>(payload[0]) << 8) |
                                          static_cast<unsigned char>(payload[1])
                                    : 1005;
        close_conn(ci, code);
        return false;
      }
      case 0x9:  // ping: answer so that the server's heartbeat does not close us
        if (!send_frame(ci, 0xA, payload, std::min<size_t>(n, 125))) {
          close_conn(ci, kCodeReset);
          return false;
        }
        return true;
      case 0x0:
      case 0x1:
      case 0x2:
        ++t_.wire_frames;
        t_.wire_payload_bytes += n;
        if ((b0 & 0x40) && o_.deflate) return on_compressed(ci, payload, n, t_read);
        if (o_.protocol == Protocol::kOdin) return on_odin_text(ci, payload, n, t_read);
        return nats_feed(ci, payload, n, t_read);
      default:
        return true;
    }
  }

  // A permessage-deflate frame (RSV1): the server keeps no context between messages, so each
  // one inflates alone (inflateReset, then the payload and the 00 00 ff ff it left off) into a
  // buffer reused by the whole worker.
  bool on_compressed(uint32_t ci, const char* p, size_t n, int64_t t_read) {
    ++t_.compressed_frames;
    t_.compressed_wire_bytes += n;
    if (!zs_ready_) {
      if (inflateInit2(&zs_, -15) != Z_OK) {
        std::fprintf(stderr, "loadclient: inflateInit2 failed\n");
        std::exit(1);
      }
      zs_ready_ = true;
    } else {
      inflateReset(&zs_);
    }
    if (inflated_.size() < 4096) inflated_.resize(4096);
    static const unsigned char kTail[4] = {0x00, 0x00, 0xff, 0xff};
    size_t out = 0;
    for (int part = 0; part < 2; ++part) {
      zs_.next_in = part ? const_cast<unsigned char*>(kTail)
                         : reinterpret_cast<unsigned char*>(const_cast<char*>(p));
      zs_.avail_in = part ? 4u : static_cast<uInt>(n);
      for (;;) {  // until this part is consumed and nothing is left to come out
        if (out == inflated_.size()) inflated_.resize(inflated_.size() * 2);
        zs_.next_out = reinterpret_cast<unsigned char*>(inflated_.data() + out);
        zs_.avail_out = static_cast<uInt>(inflated_.size() - out);
        const int r = inflate(&zs_, Z_SYNC_FLUSH);
        out = inflated_.size() - zs_.avail_out;
        if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) {
          ++t_.inflate_errors;
          close_conn(ci, kCodeBadFrame);
          return false;
        }
        if (r == Z_STREAM_END || zs_.avail_out > 0) break;  // all input consumed, or the end
      }
    }
    t_.inflated_bytes += out;
    if (o_.protocol == Protocol::kOdin) return on_odin_text(ci, inflated_.data(), out, t_read);
    return nats_feed(ci, inflated_.data(), out, t_read);
  }

  bool on_odin_text(uint32_t ci, const char* p, size_t n, int64_t t_read) {
    Conn& c = conns_[ci];
    if (starts_with(p, n, "{\"seq\":")) {
      if (c.slow || (c.phase != kOpen && c.phase != kUpgraded)) return true;
      const char* end = p + n;
      const char* q = p + 7;
      uint64_t seq = 0;
      parse_u64(q, end, seq);
      // `latest` subscriptions: "conflated":K right after seq, when K messages were skipped.
      uint64_t conflated = 0;
      if (starts_with(q, static_cast<size_t>(end - q), ",\"conflated\":")) {
        q += 13;
        parse_u64(q, end, conflated);
      }
      const bool dup = seq <= c.last_seq;
      if (dup)
        ++t_.dups;
      else if (seq != c.last_seq + 1)
        t_.gaps += seq - c.last_seq - 1;
      c.last_seq = std::max(c.last_seq, seq);
      count_delivery(c);
      // Envelope keys come in a fixed order: seq, ts, type, channel, data.
      uint32_t ch = 0xffffffff;
      const char* cn = find(q, end, "\"channel\":\"");
      if (!cn) return true;
      cn += 11;
      if (starts_with(cn, static_cast<size_t>(end - cn), "ch")) {
        const char* d = cn + 2;
        uint64_t v = 0;
        if (parse_u64(d, end, v) && d < end && *d == '"' && v < static_cast<uint64_t>(o_.channels))
          ch = static_cast<uint32_t>(v);
        cn = d;
      }
      const char* data = find(cn, end, "\"data\":");
      if (!data) return true;
      data += 7;
      int64_t t = 0;
      uint64_t num = 0;
      bool has_n = false;
      if (parse_tn(data, end, t, num, has_n)) {
        if (!held_.empty() && !dup && has_n) check_channel(ci, ch, num, conflated);
        record(ch, t, num, has_n, dup, t_read);
      }
      return true;
    }
    if (c.phase == kUpgraded) {
      if (starts_with(p, n, "{\"type\":\"subscribed\"")) {
        // A gateway without latest-value subscriptions answers without echoing the delivery.
        if (o_.latest && !find(p, p + n, "\"delivery\":\"latest\"")) {
          fail(ci, "no_latest");
          return false;
        }
        mark_open(ci);
      } else if (starts_with(p, n, "{\"type\":\"error\"")) {
        fail(ci, "error_reply");
        return false;
      }
    }
    return true;
  }

  void count_delivery(Conn& c) {
    ++c.received;
    ++t_.received;
    if (!o_.latest && o_.expect > 0 && c.phase == kOpen &&
        c.received == static_cast<uint64_t>(o_.expect))
      --pending_;
  }

  // Per (connection, channel), from the publisher's counter n: it only increases, and the
  // messages skipped since the previous one the connection received are exactly the envelope's
  // `conflated` (with `all`, none: any skip counts). Assumes the connection subscribed before
  // the first message of the channel was published, as the bench does.
  void check_channel(uint32_t ci, uint32_t ch, uint64_t num, uint64_t conflated) {
    const long j = ch == 0xffffffff ? -1 : slot_in(ci, ch);
    if (j < 0) {
      ++t_.foreign;
      return;
    }
    const size_t s = slot(ci, j);
    t_.conflated += conflated;
    if (conflated) ++t_.conflated_frames;
    uint32_t& held = held_[s];
    if (num <= held) {
      ++t_.order_errors;
    } else {
      if (num - held - 1 != conflated) ++t_.conflated_mismatch;
      held = static_cast<uint32_t>(num);
    }
    const uint32_t before = acc_[s];
    acc_[s] = static_cast<uint32_t>(before + 1 + conflated);
    if (o_.latest && o_.expect > 0 && conns_[ci].phase == kOpen && before < o_.per_channel &&
        acc_[s] >= o_.per_channel)
      --pending_;
  }

  // Staleness, every --stale-interval: for each subscribed non-slow connection and each of its
  // channels, how long the value it holds has been out of date = now minus the publish time of
  // the first message newer than the one it holds (0 when it holds the newest published).
  // Sampled from the first publish until publishing has ended and every open connection is up
  // to date again. Connections the server closed keep their last value (a frozen screen): they
  // count in the "with closed" figure only.
  void sample_staleness(int64_t now) {
    if (stale_finished_ || board_->first_ns->load(std::memory_order_acquire) == 0) return;
    const bool done = board_->done->load(std::memory_order_acquire) != 0;
    TimeHist* tl = nullptr;
    const size_t sec = static_cast<size_t>(std::max<int64_t>(0, now - t_all_) / kSec);
    if (sec < timeline_cap_) {
      if (sec >= stale_tl_.size()) stale_tl_.resize(sec + 1);
      tl = &stale_tl_[sec];
    }
    int64_t worst_open = 0;
    for (size_t ci = 0; ci < n_; ++ci) {
      const Conn& c = conns_[ci];
      if (c.slow || (c.phase != kOpen && c.phase != kClosed)) continue;
      const bool open = c.phase == kOpen;
      for (long j = 0; j < o_.per_conn; ++j) {
        const uint32_t ch = channel_of(static_cast<uint32_t>(ci), j);
        const uint32_t held = held_[slot(static_cast<uint32_t>(ci), j)];
        const uint32_t newest = board_->newest_n(ch);
        int64_t age = 0;
        if (newest > held) {
          uint32_t next = held + 1;
          if (newest - next >= board_->cap) {  // overwritten in the ring: a lower bound
            next = newest - board_->cap + 1;
            ++t_.stale_clamped;
          }
          const int64_t since = board_->time_of(ch, next);
          if (since == 0) {
            ++t_.stale_unknown;
            continue;
          }
          age = std::max<int64_t>(0, now - since);
        }
        stale_closed_hist_.add(age);
        if (!open) continue;
        stale_hist_.add(age);
        if (tl) tl->add(age);
        worst_open = std::max(worst_open, age);
      }
    }
    ++t_.stale_rounds;
    if (done && worst_open == 0) stale_finished_ = true;
  }

  // At the end: every open connection's channels against what was published on them.
  void final_check() {
    if (held_.empty() || (!board_ && o_.per_channel == 0)) return;
    for (size_t ci = 0; ci < n_; ++ci) {
      const Conn& c = conns_[ci];
      if (c.slow || c.phase != kOpen) continue;
      for (long j = 0; j < o_.per_conn; ++j) {
        const uint32_t ch = channel_of(static_cast<uint32_t>(ci), j);
        const uint32_t published = board_ ? board_->newest_n(ch) : o_.per_channel;
        const size_t s = slot(static_cast<uint32_t>(ci), j);
        ++t_.final_slots;
        if (held_[s] == published) ++t_.final_newest;
        if (acc_[s] < published) ++t_.final_short;
        if (acc_[s] > published) ++t_.final_over;
      }
    }
  }

  // Latency of one delivery, and its contribution to its message's reach-all.
  void record(uint32_t ch, int64_t t, uint64_t num, bool has_n, bool dup, int64_t t_read) {
    const int64_t lat = t_read - t;
    hist_.add(lat);
    if (t_all_ > 0 && t_read >= t_all_) {
      const size_t s = static_cast<size_t>((t_read - t_all_) / kSec);
      if (s < timeline_cap_) {
        if (s >= timeline_.size()) timeline_.resize(s + 1);
        timeline_[s].add(lat);
      }
    } else {
      ++t_.before_connected;
    }
    if (dup || ch == 0xffffffff) return;  // a duplicate does not make a message reach anyone new
    const MsgKey key{has_n ? num : (static_cast<uint64_t>(t) | (1ull << 63)), ch};
    MsgStat& m = msgs_.try_emplace(key).first->second;
    m.t = t;
    ++m.count;
    m.last_ns = std::max(m.last_ns, t_read);
  }

  // NATS protocol over the WebSocket: the frame payloads are one byte stream. A command cut by
  // a frame boundary is kept in partial->nats and completed by the next frames.
  bool nats_feed(uint32_t ci, char* p, size_t n, int64_t t_read) {
    Conn& c = conns_[ci];
    if (c.slow && c.phase == kOpen) return true;  // only its close frame matters from now on
    if (c.partial && !c.partial->nats.empty()) {
      std::string& s = c.partial->nats;
      s.append(p, n);
      size_t used = 0;
      if (!nats_parse(ci, s.data(), s.size(), t_read, used)) return false;
      c.partial->nats.erase(0, used);
      return true;
    }
    size_t used = 0;
    if (!nats_parse(ci, p, n, t_read, used)) return false;
    if (used < n) {
      if (!c.partial) c.partial = std::make_unique<Partial>();
      c.partial->nats.assign(p + used, n - used);
    }
    return true;
  }

  bool nats_parse(uint32_t ci, const char* p, size_t n, int64_t t_read, size_t& used) {
    const char* end = p + n;
    const char* pos = p;
    for (;;) {
      const char* eol = find(pos, end, "\r\n");
      if (!eol) {
        if (end - pos > 65536) {
          close_conn(ci, kCodeBadFrame);
          return false;
        }
        break;
      }
      const size_t ll = static_cast<size_t>(eol - pos);
      const bool hmsg = starts_with(pos, ll, "HMSG ");
      if (hmsg || starts_with(pos, ll, "MSG ")) {
        // MSG <subject> <sid> [reply] <size> | HMSG <subject> <sid> [reply] <hdr> <total>
        std::array<std::string_view, 7> tok;
        size_t nt = 0;
        for (const char* q = pos; q < eol && nt < tok.size();) {
          while (q < eol && *q == ' ')
            ++q;
          const char* s = q;
          while (q < eol && *q != ' ')
            ++q;
          if (q > s) tok[nt++] = std::string_view(s, static_cast<size_t>(q - s));
        }
        const size_t want = hmsg ? 5 : 4;
        if (nt != want && nt != want + 1) {
          close_conn(ci, kCodeBadFrame);
          return false;
        }
        uint64_t sid = 0, total = 0, hdr = 0;
        const char* a = tok[2].data();
        parse_u64(a, a + tok[2].size(), sid);
        a = tok[nt - 1].data();
        parse_u64(a, a + tok[nt - 1].size(), total);
        if (hmsg) {
          a = tok[nt - 2].data();
          parse_u64(a, a + tok[nt - 2].size(), hdr);
        }
        const char* body = eol + 2;
        if (static_cast<uint64_t>(end - body) < total + 2) break;  // wait for the rest
        if (hdr <= total) on_nats_msg(ci, sid, body + hdr, body + total, t_read);
        pos = body + total + 2;
        continue;
      }
      if (starts_with(pos, ll, "PING")) {
        if (!send_frame(ci, 0x2, "PONG\r\n", 6)) {
          close_conn(ci, kCodeReset);
          return false;
        }
      } else if (starts_with(pos, ll, "PONG")) {
        if (conns_[ci].phase == kUpgraded) mark_open(ci);
      } else if (starts_with(pos, ll, "-ERR")) {
        ++t_.nats_errors;
        if (t_.nats_errors <= 3)
          std::fprintf(stderr, "loadclient: nats: %.*s\n", static_cast<int>(ll), pos);
      }
      pos = eol + 2;
    }
    used = static_cast<size_t>(pos - p);
    return true;
  }

  void on_nats_msg(uint32_t ci, uint64_t sid, const char* p, const char* end, int64_t t_read) {
    Conn& c = conns_[ci];
    if (c.slow || sid == 0 || sid > static_cast<uint64_t>(o_.per_conn)) return;
    count_delivery(c);
    int64_t t = 0;
    uint64_t num = 0;
    bool has_n = false;
    if (!parse_tn(p, end, t, num, has_n)) return;
    bool dup = false;
    if (has_n) {
      // No per-connection seq in NATS: contiguity per (connection, channel) of the publisher's
      // per-channel counter n. The first message seen only counts as a gap when n > 1, so a
      // publisher counting from 0 or from 1 both pass.
      uint32_t& last =
          last_n_[static_cast<size_t>(ci) * static_cast<size_t>(o_.per_conn) + sid - 1];
      const auto v = static_cast<uint32_t>(num);
      if (last == kNoN) {
        if (v > 1) t_.gaps += v - 1;
        last = v;
      } else if (v <= last) {
        ++t_.dups;
        dup = true;
      } else {
        t_.gaps += v - last - 1;
        last = v;
      }
    }
    record(channel_of(ci, static_cast<long>(sid - 1)), t, num, has_n, dup, t_read);
  }

  // Client frames must be masked (RFC 6455 5.3).
  bool send_frame(uint32_t ci, unsigned opcode, const char* data, size_t n) {
    std::string& f = frame_out_;
    f.clear();
    f.push_back(static_cast<char>(0x80 | opcode));
    if (n < 126) {
      f.push_back(static_cast<char>(0x80 | n));
    } else if (n < 65536) {
      f.push_back(static_cast<char>(0x80 | 126));
      f.push_back(static_cast<char>(n >> 8));
      f.push_back(static_cast<char>(n & 0xff));
    } else {
      f.push_back(static_cast<char>(0x80 | 127));
      for (int i = 7; i >= 0; --i)
        f.push_back(static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xff));
    }
    rng_ = splitmix(rng_);
    char mask[4];
    std::memcpy(mask, &rng_, 4);
    f.append(mask, 4);
    const size_t at = f.size();
    f.append(data, n);
    for (size_t i = 0; i < n; ++i)
      f[at + i] = static_cast<char>(f[at + i] ^ mask[i & 3]);
    if (!ssl_.empty()) return tls_write(ci, f.data(), f.size());
    // Tiny writes on a socket whose send buffer we never fill: a short write means it is broken.
    return write(conns_[ci].fd, f.data(), f.size()) == static_cast<ssize_t>(f.size());
  }

  // ---- TLS (--tls) ------------------------------------------------------------------------

  // One context per worker process, made after the fork.
  bool tls_init() {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return tls_init_error("SSL_CTX_new");
    tls_ctx_ = ctx;
    // Records are read ahead into OpenSSL's buffer (one recv for many small records rather than
    // two per record); the loop below reads until WANT_READ, so nothing stays unseen in it.
    // RELEASE_BUFFERS gives an idle connection's buffers back: 10,000+ connections share the
    // machine with the server. Writes may be partial and may be retried from a moved buffer.
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // A peer that drops TCP without close_notify is an EOF, as it is for plain WebSocket.
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (!o_.ca.empty()) {
      if (SSL_CTX_load_verify_locations(ctx, o_.ca.c_str(), nullptr) != 1)
        return tls_init_error(("cannot load --ca " + o_.ca).c_str());
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    } else {
      SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
    if (o_.tls_resume) {
      // Keep the newest ticket the server sends (TLS 1.3 sends it after the handshake).
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
      SSL_CTX_set_app_data(ctx, this);
      SSL_CTX_sess_set_new_cb(ctx, [](SSL* ssl, SSL_SESSION* session) {
        auto* w = static_cast<Worker*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
        if (w->tls_session_) SSL_SESSION_free(w->tls_session_);
        w->tls_session_ = session;
        return 1;  // the reference is ours
      });
    } else {
      // Full handshakes only: nothing is offered for resumption. The tickets the server sends
      // after the handshake are read and dropped (a browser's first connect gets them too).
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    return true;
  }

  static bool tls_init_error(const char* what) {
    char text[256];
    ERR_error_string_n(ERR_get_error(), text, sizeof(text));
    std::fprintf(stderr, "loadclient: TLS: %s: %s\n", what, text);
    return false;
  }

  void tls_start(uint32_t ci) {
    Conn& c = conns_[ci];
    SSL* ssl = SSL_new(tls_ctx_);
    if (!ssl || SSL_set_fd(ssl, c.fd) != 1) {
      if (ssl) SSL_free(ssl);
      return fail(ci, "tls_setup");
    }
    ssl_[ci] = ssl;
    SSL_set_connect_state(ssl);
    if (!o_.servername.empty()) SSL_set_tlsext_host_name(ssl, o_.servername.c_str());
    if (!o_.ca.empty()) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
      if (!o_.servername.empty())
        X509_VERIFY_PARAM_set1_host(param, o_.servername.c_str(), 0);
      else
        X509_VERIFY_PARAM_set1_ip_asc(param, o_.host.c_str());
    }
    if (tls_session_) {
      // A copy per connection: OpenSSL marks a TLS 1.3 session not resumable once a handshake
      // has resumed it, and the newest ticket is offered by many handshakes in flight at once.
      // (The gateway's tickets are stateless, so the same ticket resumes every time.)
      if (SSL_SESSION* copy = SSL_SESSION_dup(tls_session_)) {
        SSL_set_session(ssl, copy);
        SSL_SESSION_free(copy);  // the SSL holds its own reference
      }
    }
    c.phase = kTlsHandshake;
    tls_handshake(ci);
  }

  // Drives the handshake as far as the socket allows; epoll says when to go on.
  void tls_handshake(uint32_t ci) {
    SSL* ssl = ssl_[ci];
    const int r = SSL_do_handshake(ssl);
    if (r == 1) {
      const int64_t now = bench::realtime_ns();
      tls_hist_.add(now - tls_t0_[ci]);
      ++t_.tls_handshakes;
      if (SSL_session_reused(ssl)) ++t_.tls_resumed;
      if (tls_desc_.empty()) tls_describe(ssl);
      ERR_clear_error();
      return send_upgrade(ci);
    }
    switch (SSL_get_error(ssl, r)) {
      case SSL_ERROR_WANT_READ:
        ERR_clear_error();
        return watch(ci, EPOLLIN);
      case SSL_ERROR_WANT_WRITE:
        ERR_clear_error();
        return watch(ci, EPOLLOUT);
      default: {
        const long verify = SSL_get_verify_result(ssl);
        const bool bad_cert = !o_.ca.empty() && verify != X509_V_OK;
        if (tls_errors_logged_++ < 3) {
          char text[256] = "connection closed";
          if (const unsigned long e = ERR_peek_error()) ERR_error_string_n(e, text, sizeof(text));
          std::fprintf(stderr, "loadclient: TLS handshake failed: %s%s%s\n", text,
                       bad_cert ? ": " : "", bad_cert ? X509_verify_cert_error_string(verify) : "");
        }
        ERR_clear_error();
        return fail(ci, bad_cert ? "tls_verify" : "tls_handshake");
      }
    }
  }

  // What the first handshake of this worker negotiated, for the report.
  void tls_describe(SSL* ssl) {
    std::string& d = tls_desc_;
    d.append(SSL_get_version(ssl)).append("|").append(SSL_get_cipher_name(ssl)).append("|");
    const int group = SSL_get_negotiated_group(ssl);
    const char* gname = group ? SSL_group_to_name(ssl, group) : nullptr;
    d.append(gname ? gname : "?").append("|");
    // The server's signature over the handshake (CertificateVerify): scheme and digest.
    int type = NID_undef, digest = NID_undef;
    SSL_get_peer_signature_type_nid(ssl, &type);
    SSL_get_peer_signature_nid(ssl, &digest);
    const char* scheme = type == EVP_PKEY_EC        ? "ECDSA"
                         : type == EVP_PKEY_RSA_PSS ? "RSA-PSS"
                         : type == EVP_PKEY_RSA     ? "RSA-PKCS1"
                         : type == EVP_PKEY_ED25519 ? "Ed25519"
                         : type != NID_undef        ? OBJ_nid2sn(type)
                                                    : "?";
    d.append(scheme);
    if (digest != NID_undef) d.append("+").append(OBJ_nid2sn(digest));
    d.append("|");
    if (X509* cert = SSL_get1_peer_certificate(ssl)) {
      if (EVP_PKEY* key = X509_get0_pubkey(cert)) {
        char bits[32];
        std::snprintf(bits, sizeof(bits), " %d", EVP_PKEY_get_bits(key));
        const char* type = EVP_PKEY_get0_type_name(key);
        d.append(type ? type : "?").append(bits);
      }
      X509_free(cert);
    }
  }

  // Encrypts and sends; what the socket does not take now waits in tls_out_ for EPOLLOUT. With
  // SSL_MODE_ENABLE_PARTIAL_WRITE each call reports the bytes taken (whole records); after
  // WANT_WRITE the retry passes the same bytes (from a buffer that may have moved, which
  // SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows). False on a fatal error.
  bool tls_write(uint32_t ci, const char* p, size_t n) {
    auto pending = tls_out_.find(ci);
    if (pending != tls_out_.end()) {  // keep the order: behind what is already waiting
      pending->second.append(p, n);
      return true;
    }
    const size_t left = tls_send(ci, p, n);
    if (left == kTlsFailed) return false;
    if (left > 0) {
      tls_out_[ci].assign(p + (n - left), left);
      watch(ci, (conns_[ci].stopped_reading ? 0u : uint32_t{EPOLLIN}) | EPOLLOUT);
    }
    return true;
  }

  // EPOLLOUT: bytes waiting, or a read that had to write first. False on a fatal error.
  bool tls_flush(uint32_t ci) {
    auto pending = tls_out_.find(ci);
    if (pending == tls_out_.end()) {
      if (!conns_[ci].stopped_reading) {
        watch(ci, EPOLLIN);          // on_readable_tls asks for EPOLLOUT again if need be
        on_readable_tls(ci, false);  // SSL_read retries the write
      }
      return true;
    }
    std::string& out = pending->second;
    const size_t left = tls_send(ci, out.data(), out.size());
    if (left == kTlsFailed) return false;
    out.erase(0, out.size() - left);
    if (left == 0) {
      tls_out_.erase(pending);
      if (!conns_[ci].stopped_reading) watch(ci, EPOLLIN);
    }
    return true;
  }

  static constexpr size_t kTlsFailed = ~size_t{0};

  // Bytes not sent yet (the socket is full), or kTlsFailed.
  size_t tls_send(uint32_t ci, const char* p, size_t n) {
    SSL* ssl = ssl_[ci];
    while (n > 0) {
      size_t written = 0;
      const int r = SSL_write_ex(ssl, p, n, &written);
      if (r == 1) {
        p += written;
        n -= written;
        continue;
      }
      const int e = SSL_get_error(ssl, r);
      ERR_clear_error();
      if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) return n;
      return kTlsFailed;
    }
    return 0;
  }

  // Reads until OpenSSL wants more from the socket: SSL_read returns at most one record per
  // call, and read-ahead may hold further records that epoll will never signal. The decrypted
  // bytes are gathered in the scratch buffer and parsed like a plain read.
  void on_readable_tls(uint32_t ci, bool draining) {
    Conn& c = conns_[ci];
    for (;;) {
      SSL* ssl = ssl_[ci];
      size_t fill = 0;
      int32_t end = 0;  // 0: OpenSSL wants the socket again; else how the stream ended
      bool want_write = false;
      while (fill < scratch_.size()) {
        size_t got = 0;
        const int r = SSL_read_ex(ssl, scratch_.data() + fill, scratch_.size() - fill, &got);
        if (r == 1) {
          fill += got;
          continue;
        }
        const int e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_WANT_WRITE) want_write = true;
        if (e == SSL_ERROR_ZERO_RETURN)
          end = kCodeEof;  // close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF)
        else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
          end = kCodeReset;
        ERR_clear_error();
        break;
      }
      if (fill > 0) {
        // The delivery time of every frame completed by these records.
        const int64_t t_read = bench::realtime_ns();
        if (!feed(ci, scratch_.data(), fill, t_read)) break;
        if (c.slow && c.phase == kOpen && !c.stopped_reading) {
          epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
          c.stopped_reading = true;
        }
      }
      if (end != 0) {
        lost(ci, end);
        break;
      }
      if (want_write) watch(ci, EPOLLIN | EPOLLOUT);  // a post-handshake message to send
      if (c.stopped_reading && !draining) break;
      if (fill < scratch_.size()) break;
    }
    if (c.partial && (c.fd < 0 || (c.partial->ws.empty() && c.partial->nats.empty())))
      c.partial.reset();
  }

  void tls_release(uint32_t ci) {
    if (ssl_[ci]) {
      SSL_free(ssl_[ci]);  // no close_notify: the socket is closed right after, as in plain mode
      ssl_[ci] = nullptr;
    }
    tls_out_.erase(ci);
  }

  void check_timeouts(int64_t now) {
    const auto now_ms = static_cast<uint32_t>((now - start_ns_) / kMs);
    const auto limit = static_cast<uint32_t>(o_.connect_timeout_s * 1000);
    for (size_t ci = 0; ci < next_; ++ci) {
      const Conn& c = conns_[ci];
      if (in_flight(c.phase) && now_ms - c.started_ms > limit)
        fail(static_cast<uint32_t>(ci), "timeout");
    }
  }

  void read_control() {
    char buf[256];
    for (;;) {
      const ssize_t r = read(from_parent_, buf, sizeof(buf));
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        stop_ = true;  // the parent is gone
        return;
      }
      if (r < 0) break;
      ctl_.insert(ctl_.end(), buf, buf + r);
    }
    take_msgs(ctl_, [&](uint32_t type, const char* p, size_t n) {
      if (type == kGo && n == sizeof(int64_t)) {
        std::memcpy(&t_all_, p, sizeof(t_all_));
        cpu_go_us_ = cpu_us_self();
      } else if (type == kStop) {
        stop_ = true;
      }
    });
  }

  // The slow connections stopped reading long ago; read what the server left them for up to
  // 2 s and note how their stream ends: a close frame (its code), EOF, or nothing yet.
  void drain_slow() {
    const int dp = epoll_create1(EPOLL_CLOEXEC);
    size_t open = 0;
    for (size_t ci = 0; ci < n_; ++ci) {
      Conn& c = conns_[ci];
      if (!c.slow || c.phase != kOpen) continue;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<uint32_t>(ci);
      if (epoll_ctl(dp, EPOLL_CTL_ADD, c.fd, &ev) == 0) ++open;
    }
    // Records OpenSSL read ahead before the connection stopped reading: epoll will not tell.
    for (size_t ci = 0; ci < n_ && !ssl_.empty(); ++ci) {
      Conn& c = conns_[ci];
      if (c.slow && c.phase == kOpen && ssl_[ci] && SSL_has_pending(ssl_[ci])) {
        on_readable(static_cast<uint32_t>(ci), true);
        if (c.phase != kOpen) --open;
      }
    }
    const int64_t deadline = bench::realtime_ns() + kDrainNs;
    std::vector<epoll_event> events(256);
    while (open > 0) {
      const int64_t left = deadline - bench::realtime_ns();
      if (left <= 0) break;
      const int nev = epoll_wait(dp, events.data(), static_cast<int>(events.size()),
                                 static_cast<int>(left / kMs + 1));
      for (int e = 0; e < nev; ++e) {
        const uint32_t ci = events[static_cast<size_t>(e)].data.u32;
        if (conns_[ci].phase != kOpen) continue;
        on_readable(ci, true);
        if (conns_[ci].phase != kOpen) --open;
      }
    }
    close(dp);
  }

  void send_result() {
    std::map<int32_t, uint64_t> slow_codes;
    for (const Conn& c : conns_) {
      if (c.slow && (c.phase == kOpen || c.phase == kClosed)) ++slow_codes[c.close_code];
    }
    Writer w;
    w.put(t_);
    w.put(hist_);
    w.put(stale_hist_);
    w.put(stale_closed_hist_);
    w.put(static_cast<uint32_t>(stale_tl_.size()));
    for (const TimeHist& h : stale_tl_)
      w.put(h);
    if (o_.tls) {
      w.put(tls_hist_);
      w.put_str(tls_desc_);
    }
    w.put(static_cast<uint32_t>(timeline_.size()));
    for (const TimeHist& h : timeline_)
      w.put(h);
    for (const auto* m : {&close_codes_, &slow_codes}) {
      w.put(static_cast<uint32_t>(m->size()));
      for (const auto& [code, count] : *m) {
        w.put(code);
        w.put(count);
      }
    }
    w.put(static_cast<uint32_t>(failures_.size()));
    for (const auto& [reason, count] : failures_) {
      w.put_str(reason);
      w.put(count);
    }
    w.put(static_cast<uint32_t>(subs_.size()));
    w.b.insert(w.b.end(), reinterpret_cast<const char*>(subs_.data()),
               reinterpret_cast<const char*>(subs_.data() + subs_.size()));
    w.put(static_cast<uint64_t>(msgs_.size()));
    for (const auto& [k, m] : msgs_) {
      w.put(k.channel);
      w.put(k.id);
      w.put(m.t);
      w.put(m.last_ns);
      w.put(m.count);
    }
    int flags = fcntl(to_parent_, F_GETFL);
    fcntl(to_parent_, F_SETFL, flags & ~O_NONBLOCK);
    send_msg(to_parent_, kResult, w.b.data(), w.b.size());
  }

  const Options& o_;
  const PubBoard* const board_;  // --observe-nats: what has been published; else null
  const long lo_;
  const size_t n_;
  const int to_parent_, from_parent_;
  const int64_t t0_;
  int ep_ = -1;
  int64_t start_ns_ = 0;
  double ramp_ = 0;
  std::vector<Conn> conns_;
  std::vector<uint32_t> last_n_;  // nats-ws: last n per (connection, channel)
  // With latest or --observe-nats, per (connection, channel): the newest n held, and received
  // + conflated. Empty otherwise.
  std::vector<uint32_t> held_, acc_;
  LatHist stale_hist_, stale_closed_hist_;
  std::vector<TimeHist> stale_tl_;  // staleness per second since all connected (open ones)
  int64_t stale_interval_ns_ = 0, next_stale_ns_ = 0;
  bool stale_finished_ = false;
  std::vector<char> scratch_;  // every read lands here
  std::string out_, nats_cmd_, frame_out_;
  std::vector<uint32_t> subs_;  // non-slow subscribed connections per channel
  size_t next_ = 0;             // next connection to open
  int inflight_ = 0;            // connecting, not yet subscribed
  long pending_ = 0;            // open non-slow connections still short of --expect
  bool ready_sent_ = false, done_sent_ = false, stop_ = false;
  int64_t t_all_ = 0;  // when every connection of every worker was subscribed (from the parent)
  int64_t cpu_go_us_ = 0;
  uint64_t rng_ = 0;
  std::vector<char> ctl_;
  Totals t_;
  z_stream zs_{};  // --deflate: one inflater per worker, reset per message
  bool zs_ready_ = false;
  std::vector<char> inflated_;
  LatHist hist_;
  std::vector<TimeHist> timeline_;
  size_t timeline_cap_ = 0;
  MsgMap msgs_;
  std::map<int32_t, uint64_t> close_codes_;
  std::map<std::string, uint64_t> failures_;
  // --tls only; empty otherwise.
  SSL_CTX* tls_ctx_ = nullptr;
  std::vector<SSL*> ssl_;        // per connection
  std::vector<int64_t> tls_t0_;  // per connection: connect() time, for the handshake time
  std::unordered_map<uint32_t, std::string> tls_out_;  // plaintext the socket did not take yet
  SSL_SESSION* tls_session_ = nullptr;                 // --tls-resume: the newest ticket
  LatHist tls_hist_;                                   // connect() to TLS handshake done
  std::string tls_desc_;
  int tls_errors_logged_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Parent: forks the workers, follows them, samples the server, merges and prints.

struct ProcSample {
  long rss_kb = 0;
  double cpu_s = 0;
};

ProcSample sample_procs(const std::vector<int>& pids) {
  ProcSample s;
  static const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  char path[64], buf[4096];
  for (int pid : pids) {
    std::snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if (FILE* f = std::fopen(path, "r")) {
      while (std::fgets(buf, sizeof(buf), f)) {
        if (std::strncmp(buf, "VmRSS:", 6) == 0) s.rss_kb += std::atol(buf + 6);
      }
      std::fclose(f);
    }
    std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (FILE* f = std::fopen(path, "r")) {
      const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
      std::fclose(f);
      buf[n] = 0;
      // Fields after the command name (which may hold spaces): state is field 3, utime 14,
      // stime 15.
      if (const char* q = std::strrchr(buf, ')')) {
        unsigned long utime = 0, stime = 0;
        if (std::sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                        &stime) == 2)
          s.cpu_s += static_cast<double>(utime + stime) / tick;
      }
    }
  }
  return s;
}

// --observe-nats: a plain NATS subscriber to <prefix>> in the parent, writing what is published
// on the board the workers read. It sees each message when the gateway's own subscription does.
class NatsObserver {
 public:
  NatsObserver(const Options& o, PubBoard& board) : o_(o), board_(board) {}
  ~NatsObserver() {
    if (fd_ >= 0) close(fd_);
  }

  // Connects and subscribes; returns once the server has answered the PING after the SUB (so
  // nothing published afterwards is missed), or false after 10 s.
  bool start() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(o_.observe_port));
    a.sin_addr.s_addr = o_.observe_addr;
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      std::perror("loadclient: --observe-nats connect");
      return false;
    }
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    const std::string cmd =
        "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\nSUB " + o_.prefix +
        "> 1\r\nPING\r\n";
    if (!write_all(fd_, cmd.data(), cmd.size())) return false;
    fcntl(fd_, F_SETFL, O_NONBLOCK);
    const int64_t deadline = bench::realtime_ns() + 10 * kSec;
    while (!ponged_) {
      const int64_t left = deadline - bench::realtime_ns();
      if (left <= 0) break;
      pollfd pf{fd_, POLLIN, 0};
      poll(&pf, 1, static_cast<int>(left / kMs + 1));
      if (!on_readable()) return false;
    }
    if (!ponged_) std::fprintf(stderr, "loadclient: --observe-nats: no PONG from the server\n");
    return ponged_;
  }

  int fd() const { return fd_; }

  // False when the connection is gone.
  bool on_readable() {
    char buf[1 << 16];
    for (;;) {
      const ssize_t r = read(fd_, buf, sizeof(buf));
      if (r > 0) {
        buf_.append(buf, static_cast<size_t>(r));
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      lost_ = true;
      break;
    }
    parse();
    return !lost_;
  }

  bool lost() const { return lost_; }
  uint64_t messages = 0;  // messages of ch0..ch{C-1} with t and n
  uint64_t gaps = 0;      // n of a channel that did not follow the previous one
  uint64_t other = 0;     // messages that were not
  int64_t first_ns = 0, last_ns = 0;

 private:
  void parse() {
    const char* p = buf_.data();
    const char* end = p + buf_.size();
    const char* pos = p;
    for (;;) {
      const char* eol = find(pos, end, "\r\n");
      if (!eol) break;
      const size_t ll = static_cast<size_t>(eol - pos);
      const bool hmsg = starts_with(pos, ll, "HMSG ");
      if (hmsg || starts_with(pos, ll, "MSG ")) {
        // MSG <subject> <sid> [reply] <size> | HMSG <subject> <sid> [reply] <hdr> <total>
        std::array<std::string_view, 7> tok;
        size_t nt = 0;
        for (const char* q = pos; q < eol && nt < tok.size();) {
          while (q < eol && *q == ' ')
            ++q;
          const char* s = q;
          while (q < eol && *q != ' ')
            ++q;
          if (q > s) tok[nt++] = std::string_view(s, static_cast<size_t>(q - s));
        }
        if (nt < (hmsg ? 5u : 4u)) {  // not a message line after all
          pos = eol + 2;
          continue;
        }
        uint64_t total = 0, hdr = 0;
        const char* a = tok[nt - 1].data();
        parse_u64(a, a + tok[nt - 1].size(), total);
        if (hmsg) {
          a = tok[nt - 2].data();
          parse_u64(a, a + tok[nt - 2].size(), hdr);
        }
        const char* body = eol + 2;
        if (static_cast<uint64_t>(end - body) < total + 2) break;  // wait for the rest
        on_msg(tok[1], body + std::min(hdr, total), body + total);
        pos = body + total + 2;
        continue;
      }
      if (starts_with(pos, ll, "PING")) {
        write_all(fd_, "PONG\r\n", 6);
      } else if (starts_with(pos, ll, "PONG")) {
        ponged_ = true;
      } else if (starts_with(pos, ll, "-ERR")) {
        std::fprintf(stderr, "loadclient: --observe-nats: %.*s\n", static_cast<int>(ll), pos);
      }
      pos = eol + 2;
    }
    buf_.erase(0, static_cast<size_t>(pos - p));
  }

  void on_msg(std::string_view subject, const char* p, const char* end) {
    // <prefix>ch<c>, with t and n in the payload
    const std::string_view want = o_.prefix;
    if (subject.size() <= want.size() + 2 || subject.substr(0, want.size()) != want ||
        subject.substr(want.size(), 2) != "ch") {
      ++other;
      return;
    }
    const char* q = subject.data() + want.size() + 2;
    uint64_t c = 0, n = 0;
    int64_t t = 0;
    bool has_n = false;
    if (!parse_u64(q, subject.data() + subject.size(), c) || q != subject.data() + subject.size() ||
        c >= board_.channels || !parse_tn(p, end, t, n, has_n) || !has_n || n == 0 ||
        n > 0xffffffffu) {
      ++other;
      return;
    }
    const auto ch = static_cast<uint32_t>(c);
    const uint32_t before = board_.newest_n(ch);
    if (n != uint64_t{before} + 1) ++gaps;
    board_.record(ch, static_cast<uint32_t>(n), t);
    ++messages;
    const int64_t now = bench::realtime_ns();
    if (!first_ns) {
      first_ns = now;
      board_.first_ns->store(now, std::memory_order_release);
    }
    last_ns = now;
    if (o_.per_channel && n >= o_.per_channel && !board_.done->load(std::memory_order_relaxed)) {
      bool all = true;
      for (uint32_t k = 0; k < board_.channels && all; ++k)
        all = board_.newest_n(k) >= o_.per_channel;
      if (all) board_.done->store(1, std::memory_order_release);
    }
  }

  const Options& o_;
  PubBoard& board_;
  int fd_ = -1;
  std::string buf_;
  bool ponged_ = false, lost_ = false;
};

struct WorkerState {
  pid_t pid = -1;
  int rfd = -1, wfd = -1;
  std::vector<char> buf;
  bool ready = false, done = false, result = false, dead = false;
  ReadyInfo info;
  std::vector<char> blob;
};

struct Merged {
  Totals t;
  LatHist hist;
  std::vector<TimeHist> timeline;
  std::map<int32_t, uint64_t> close_codes, slow_codes;
  std::map<std::string, uint64_t> failures;
  std::vector<uint64_t> subs;
  MsgMap msgs;
  int64_t cpu_window_us = 0;
  int64_t cpu_connect_us = 0;
  LatHist tls_hist;
  std::string tls_desc;
  LatHist stale, stale_closed;
  std::vector<TimeHist> stale_timeline;
};

bool merge_result(const std::vector<char>& blob, bool tls, Merged& m) {
  Reader r{blob.data(), blob.data() + blob.size()};
  Totals t = r.get<Totals>();
  auto h = std::make_unique<LatHist>();
  r.get_into(*h);
  {
    auto sh = std::make_unique<LatHist>();
    r.get_into(*sh);
    m.stale.merge(*sh);
    r.get_into(*sh);
    m.stale_closed.merge(*sh);
    const uint32_t ns = r.get<uint32_t>();
    if (!r.ok) return false;
    if (m.stale_timeline.size() < ns) m.stale_timeline.resize(ns);
    auto th = std::make_unique<TimeHist>();
    for (uint32_t i = 0; i < ns && r.ok; ++i) {
      r.get_into(*th);
      m.stale_timeline[i].merge(*th);
    }
  }
  if (tls) {
    auto th = std::make_unique<LatHist>();
    r.get_into(*th);
    m.tls_hist.merge(*th);
    std::string desc = r.get_str();
    if (m.tls_desc.empty()) m.tls_desc = std::move(desc);
  }
  if (!r.ok) return false;
  m.t.upgraded += t.upgraded;
  m.t.failed += t.failed;
  m.t.slow += t.slow;
  m.t.closed += t.closed;
  m.t.received += t.received;
  m.t.gaps += t.gaps;
  m.t.dups += t.dups;
  m.t.before_connected += t.before_connected;
  m.t.nats_errors += t.nats_errors;
  if (t.first_connect_ns && (!m.t.first_connect_ns || t.first_connect_ns < m.t.first_connect_ns))
    m.t.first_connect_ns = t.first_connect_ns;
  m.t.last_upgrade_ns = std::max(m.t.last_upgrade_ns, t.last_upgrade_ns);
  m.cpu_window_us += t.cpu_window_us;
  m.cpu_connect_us += t.cpu_connect_us;
  m.t.tls_handshakes += t.tls_handshakes;
  m.t.tls_resumed += t.tls_resumed;
  m.t.conflated += t.conflated;
  m.t.conflated_frames += t.conflated_frames;
  m.t.conflated_mismatch += t.conflated_mismatch;
  m.t.order_errors += t.order_errors;
  m.t.foreign += t.foreign;
  m.t.final_slots += t.final_slots;
  m.t.wire_frames += t.wire_frames;
  m.t.wire_payload_bytes += t.wire_payload_bytes;
  m.t.compressed_frames += t.compressed_frames;
  m.t.compressed_wire_bytes += t.compressed_wire_bytes;
  m.t.inflated_bytes += t.inflated_bytes;
  m.t.inflate_errors += t.inflate_errors;
  m.t.final_newest += t.final_newest;
  m.t.final_short += t.final_short;
  m.t.final_over += t.final_over;
  m.t.stale_rounds = std::max(m.t.stale_rounds, t.stale_rounds);  // per worker: the most
  m.t.stale_clamped += t.stale_clamped;
  m.t.stale_unknown += t.stale_unknown;
  m.hist.merge(*h);
  const uint32_t nt = r.get<uint32_t>();
  if (!r.ok) return false;
  if (m.timeline.size() < nt) m.timeline.resize(nt);
  auto th = std::make_unique<TimeHist>();
  for (uint32_t i = 0; i < nt && r.ok; ++i) {
    r.get_into(*th);
    m.timeline[i].merge(*th);
  }
  for (auto* codes : {&m.close_codes, &m.slow_codes}) {
    const uint32_t nc = r.get<uint32_t>();
    for (uint32_t i = 0; i < nc && r.ok; ++i) {
      const auto code = r.get<int32_t>();
      (*codes)[code] += r.get<uint64_t>();
    }
  }
  const uint32_t nf = r.get<uint32_t>();
  for (uint32_t i = 0; i < nf && r.ok; ++i) {
    std::string reason = r.get_str();
    m.failures[reason] += r.get<uint64_t>();
  }
  const uint32_t nc = r.get<uint32_t>();
  if (m.subs.size() < nc) m.subs.resize(nc);
  for (uint32_t i = 0; i < nc && r.ok; ++i)
    m.subs[i] += r.get<uint32_t>();
  const uint64_t nm = r.get<uint64_t>();
  if (!r.ok) return false;
  m.msgs.reserve(m.msgs.size() + static_cast<size_t>(nm));
  for (uint64_t i = 0; i < nm && r.ok; ++i) {
    MsgKey k{};
    k.channel = r.get<uint32_t>();
    k.id = r.get<uint64_t>();
    MsgStat s;
    s.t = r.get<int64_t>();
    s.last_ns = r.get<int64_t>();
    s.count = r.get<uint64_t>();
    MsgStat& x = m.msgs.try_emplace(k).first->second;
    x.t = s.t;
    x.count += s.count;
    x.last_ns = std::max(x.last_ns, s.last_ns);
  }
  return r.ok;
}

void write_ready_file(const std::string& path, uint64_t upgraded) {
  // Written whole under another name and renamed, so a script never reads half of it.
  const std::string tmp = path + ".tmp";
  if (FILE* f = std::fopen(tmp.c_str(), "w")) {
    std::fprintf(f, "%lu\n", static_cast<unsigned long>(upgraded));
    std::fclose(f);
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      std::fprintf(stderr, "loadclient: cannot write %s\n", path.c_str());
  }
}

std::string codes_json(const std::map<int32_t, uint64_t>& codes) {
  std::string s = "{";
  for (const auto& [code, count] : codes) {
    if (s.size() > 1) s += ",";
    appendf(s, "\"%s\":%lu", code_name(code).c_str(), static_cast<unsigned long>(count));
  }
  return s + "}";
}

int run_parent(const Options& o) {
  const long nofile = bench::raise_nofile_limit("loadclient");
  const long k = o.processes;
  const long slice = (o.connections + k - 1) / k;
  if (slice + 64 > nofile)
    std::fprintf(stderr,
                 "loadclient: %ld connections per process but the open-file limit is %ld; use "
                 "more --processes\n",
                 slice, nofile);

  // --observe-nats: the board is mapped before the fork, so the workers share it.
  PubBoard board;
  if (!o.observe.empty() &&
      !board.map(static_cast<uint32_t>(o.channels), o.per_channel ? o.per_channel + 1 : 8192)) {
    std::perror("loadclient: mmap");
    return 2;
  }
  const PubBoard* worker_board = o.observe.empty() ? nullptr : &board;

  const ProcSample s_start = sample_procs(o.server_pids);
  const int64_t parent_cpu_start = cpu_us_self();
  long rss_peak = s_start.rss_kb;
  const int64_t t0 = bench::realtime_ns();
  std::vector<WorkerState> ws(static_cast<size_t>(k));
  for (long i = 0; i < k; ++i) {
    int up[2], down[2];
    if (pipe2(up, O_CLOEXEC) != 0 || pipe2(down, O_CLOEXEC) != 0) {
      std::perror("loadclient: pipe");
      return 2;
    }
    const long lo = o.connections * i / k, hi = o.connections * (i + 1) / k;
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
      std::perror("loadclient: fork");
      return 2;
    }
    if (pid == 0) {
      for (long j = 0; j < i; ++j) {
        close(ws[static_cast<size_t>(j)].rfd);
        close(ws[static_cast<size_t>(j)].wfd);
      }
      close(up[0]);
      close(down[1]);
      bench::raise_nofile_limit("loadclient");
      Worker w(o, lo, hi, up[1], down[0], t0, worker_board);
      w.run();
    }
    close(up[1]);
    close(down[0]);
    WorkerState& st = ws[static_cast<size_t>(i)];
    st.pid = pid;
    st.rfd = up[0];
    st.wfd = down[1];
    fcntl(st.rfd, F_SETFL, O_NONBLOCK);
  }

  std::unique_ptr<NatsObserver> observer;
  if (worker_board) {
    observer = std::make_unique<NatsObserver>(o, board);
    if (!observer->start()) {
      for (WorkerState& w : ws)
        kill(w.pid, SIGTERM);
      for (WorkerState& w : ws)
        waitpid(w.pid, nullptr, 0);
      return 2;
    }
  }
  ProcSample s_publish{};  // the server when the observer saw the first message
  bool publish_sampled = false;
  std::vector<long> rss_timeline;  // highest RSS sampled in each second since all connected

  const int64_t hard_stop = t0 + o.hard_stop_ns();
  int64_t t_all = 0, t_end = 0, next_sample = t0, stop_deadline = 0;
  ProcSample s_connected = s_start, s_end = s_start;
  int64_t parent_cpu_go = 0, parent_cpu_end = 0;
  uint64_t ready_upgraded = 0;
  bool stopping = false;
  std::vector<pollfd> pfds;
  char buf[1 << 16];
  for (;;) {
    const int64_t now = bench::realtime_ns();
    if (!o.server_pids.empty() && now >= next_sample) {
      const long rss = sample_procs(o.server_pids).rss_kb;
      rss_peak = std::max(rss_peak, rss);
      if (t_all && !stopping) {
        const auto sec = static_cast<size_t>((now - t_all) / kSec);
        if (sec < 100000) {
          if (sec >= rss_timeline.size()) rss_timeline.resize(sec + 1, 0);
          rss_timeline[sec] = std::max(rss_timeline[sec], rss);
        }
      }
      next_sample = now + 250 * kMs;
    }
    if (!t_all &&
        std::all_of(ws.begin(), ws.end(), [](const WorkerState& w) { return w.ready || w.dead; })) {
      t_all = now;
      for (const WorkerState& w : ws) {
        if (w.ready) t_all = std::max(t_all, w.info.ready_ns);
        ready_upgraded += w.info.upgraded;
      }
      t_all = std::min(t_all, now);
      s_connected = sample_procs(o.server_pids);
      rss_peak = std::max(rss_peak, s_connected.rss_kb);
      parent_cpu_go = cpu_us_self();
      for (WorkerState& w : ws) {
        if (!w.dead) send_msg(w.wfd, kGo, &t_all, sizeof(t_all));
      }
      if (!o.ready_file.empty()) write_ready_file(o.ready_file, ready_upgraded);
    }
    if (!stopping) {
      const bool all_done =
          t_all && o.expect > 0 &&
          std::all_of(ws.begin(), ws.end(), [](const WorkerState& w) { return w.done || w.dead; });
      if (g_stop || now >= hard_stop || all_done ||
          (t_all && now >= t_all + static_cast<int64_t>(o.duration_s * 1e9))) {
        stopping = true;
        t_end = now;
        s_end = sample_procs(o.server_pids);
        rss_peak = std::max(rss_peak, s_end.rss_kb);
        parent_cpu_end = cpu_us_self();
        for (WorkerState& w : ws) {
          if (!w.dead) send_msg(w.wfd, kStop, nullptr, 0);
        }
        stop_deadline = now + 30 * kSec;
      }
    }
    if (stopping &&
        std::all_of(ws.begin(), ws.end(), [](const WorkerState& w) { return w.result || w.dead; }))
      break;
    if (stopping && now > stop_deadline) {
      for (WorkerState& w : ws) {
        if (!w.result && !w.dead) {
          std::fprintf(stderr, "loadclient: worker %d did not report; killing it\n", w.pid);
          kill(w.pid, SIGKILL);
          w.dead = true;
        }
      }
      break;
    }
    pfds.clear();
    for (const WorkerState& w : ws) {
      pfds.push_back({w.dead || w.result ? -1 : w.rfd, POLLIN, 0});
    }
    if (observer) pfds.push_back({observer->lost() ? -1 : observer->fd(), POLLIN, 0});
    poll(pfds.data(), pfds.size(), 50);
    if (observer && (pfds.back().revents & (POLLIN | POLLHUP | POLLERR))) {
      if (!observer->on_readable())
        std::fprintf(stderr, "loadclient: --observe-nats: the NATS connection was lost\n");
      if (observer->first_ns && !publish_sampled) {
        s_publish = sample_procs(o.server_pids);
        publish_sampled = true;
      }
    }
    for (size_t i = 0; i < ws.size(); ++i) {
      WorkerState& w = ws[i];
      if (pfds[i].fd < 0 || !(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      for (;;) {
        const ssize_t r = read(w.rfd, buf, sizeof(buf));
        if (r > 0) {
          w.buf.insert(w.buf.end(), buf, buf + r);
          continue;
        }
        if (r == 0) w.dead = true;  // EOF: unless it reported (below), it died
        if (r < 0 && errno == EINTR) continue;
        break;
      }
      take_msgs(w.buf, [&](uint32_t type, const char* p, size_t n) {
        if (type == kReady && n == sizeof(ReadyInfo)) {
          std::memcpy(&w.info, p, sizeof(ReadyInfo));
          w.ready = true;
        } else if (type == kDone) {
          w.done = true;
        } else if (type == kResult) {
          w.blob.assign(p, p + n);
          w.result = true;
        }
      });
      if (w.dead && !w.result)
        std::fprintf(stderr, "loadclient: worker %d exited without a report\n", w.pid);
    }
  }
  for (WorkerState& w : ws) {
    int status = 0;
    waitpid(w.pid, &status, 0);
    close(w.rfd);
    close(w.wfd);
  }

  // Merge.
  Merged m;
  m.subs.assign(static_cast<size_t>(o.channels), 0);
  uint64_t lost_connections = 0;
  for (long i = 0; i < k; ++i) {
    const WorkerState& w = ws[static_cast<size_t>(i)];
    if (!w.result || !merge_result(w.blob, o.tls, m)) {
      // A worker that did not report: its connections count as failed.
      lost_connections +=
          static_cast<uint64_t>(o.connections * (i + 1) / k - o.connections * i / k);
      m.failures["worker_lost"] +=
          static_cast<uint64_t>(o.connections * (i + 1) / k - o.connections * i / k);
    }
  }
  m.t.failed += lost_connections;
  auto reach = std::make_unique<LatHist>();
  uint64_t complete = 0;
  for (const auto& [key, s] : m.msgs) {
    if (key.channel < m.subs.size() && m.subs[key.channel] > 0 && s.count >= m.subs[key.channel]) {
      reach->add(s.last_ns - s.t);
      ++complete;
    }
  }

  const uint64_t non_slow = m.t.upgraded - m.t.slow;
  const double expected = static_cast<double>(o.expect) * static_cast<double>(non_slow);
  const double connect_s =
      m.t.first_connect_ns && m.t.last_upgrade_ns > m.t.first_connect_ns
          ? static_cast<double>(m.t.last_upgrade_ns - m.t.first_connect_ns) / 1e9
          : 0;
  const double ready_s =
      t_all && m.t.first_connect_ns ? static_cast<double>(t_all - m.t.first_connect_ns) / 1e9 : 0;
  const double window_s = t_all && t_end > t_all ? static_cast<double>(t_end - t_all) / 1e9 : 0;
  const double delivery = expected > 0 ? 100.0 * static_cast<double>(m.t.received) / expected : 0.0;
  const double client_cpu =
      window_s > 0
          ? 100.0 * (static_cast<double>(m.cpu_window_us + parent_cpu_end - parent_cpu_go) / 1e6) /
                window_s
          : 0.0;

  std::string j;
  j.reserve(8192);
  appendf(j, "{\"connections\":%lu,\"requested\":%ld,\"failed\":%lu,",
          static_cast<unsigned long>(m.t.upgraded), o.connections,
          static_cast<unsigned long>(m.t.failed));
  j += "\"failures\":{";
  bool first = true;
  for (const auto& [reason, count] : m.failures) {
    appendf(j, "%s\"%s\":%lu", first ? "" : ",", reason.c_str(), static_cast<unsigned long>(count));
    first = false;
  }
  appendf(j, "},\"closed\":%lu,\"close_codes\":%s,", static_cast<unsigned long>(m.t.closed),
          codes_json(m.close_codes).c_str());
  appendf(j, "\"connect_seconds\":%.3f,\"connections_per_second\":%.0f,\"ready_seconds\":%.3f,",
          connect_s, connect_s > 0 ? static_cast<double>(m.t.upgraded) / connect_s : 0.0, ready_s);
  appendf(j,
          "\"received\":%lu,\"expected\":%.0f,\"delivery_percent\":%.3f,\"gaps\":%lu,"
          "\"duplicates\":%lu,\"received_before_connected\":%lu,",
          static_cast<unsigned long>(m.t.received), expected, delivery,
          static_cast<unsigned long>(m.t.gaps), static_cast<unsigned long>(m.t.dups),
          static_cast<unsigned long>(m.t.before_connected));
  appendf(j, "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},",
          m.hist.quantile_ms(0.5), m.hist.quantile_ms(0.9), m.hist.quantile_ms(0.99),
          m.hist.quantile_ms(0.999), m.hist.quantile_ms(1));
  appendf(j,
          "\"messages\":%zu,\"messages_complete\":%lu,\"reach_all_ms\":{\"p50\":%.3f,\"p90\":%.3f,"
          "\"p99\":%.3f,\"max\":%.3f},",
          m.msgs.size(), static_cast<unsigned long>(complete), reach->quantile_ms(0.5),
          reach->quantile_ms(0.9), reach->quantile_ms(0.99), reach->quantile_ms(1));
  appendf(
      j, "\"protocol\":\"%s\",\"processes\":%ld,\"slow\":{\"connections\":%lu,\"close_codes\":%s},",
      o.protocol == Protocol::kOdin ? "odin" : "nats-ws", k, static_cast<unsigned long>(m.t.slow),
      codes_json(m.slow_codes).c_str());
  if (o.server_pids.empty()) {
    j += "\"server\":{},";  // no --server-pid: nothing measured, but the same shape
  } else {
    const double server_cpu =
        window_s > 0 ? 100.0 * (s_end.cpu_s - s_connected.cpu_s) / window_s : 0.0;
    appendf(j,
            "\"server\":{\"rss_kb_start\":%ld,\"rss_kb_connected\":%ld,\"rss_kb_end\":%ld,"
            "\"rss_kb_peak\":%ld,\"cpu_percent\":%.1f,\"cpu_seconds_connecting\":%.3f",
            s_start.rss_kb, s_connected.rss_kb, s_end.rss_kb, rss_peak, server_cpu,
            s_connected.cpu_s - s_start.cpu_s);
    if (observer)
      appendf(j, ",\"rss_kb_publish_start\":%ld", publish_sampled ? s_publish.rss_kb : 0L);
    j += "},";
  }
  // Delivery options, the per-channel checks, staleness and what the observer saw.
  appendf(j, "\"delivery\":\"%s\",", o.latest ? "latest" : "all");
  if (o.max_hz > 0)
    appendf(j, "\"max_hz\":%.15g,", o.max_hz);
  else
    j += "\"max_hz\":null,";
  if (o.latest || observer) {
    appendf(
        j,
        "\"channel_check\":{\"conflated\":%lu,\"conflated_frames\":%lu,"
        "\"conflated_mismatch\":%lu,\"order_errors\":%lu,\"foreign\":%lu,\"final_slots\":%lu,"
        "\"final_newest\":%lu,\"final_short\":%lu,\"final_over\":%lu},",
        static_cast<unsigned long>(m.t.conflated), static_cast<unsigned long>(m.t.conflated_frames),
        static_cast<unsigned long>(m.t.conflated_mismatch),
        static_cast<unsigned long>(m.t.order_errors), static_cast<unsigned long>(m.t.foreign),
        static_cast<unsigned long>(m.t.final_slots), static_cast<unsigned long>(m.t.final_newest),
        static_cast<unsigned long>(m.t.final_short), static_cast<unsigned long>(m.t.final_over));
  } else {
    j += "\"channel_check\":{},";
  }
  if (observer) {
    appendf(j,
            "\"staleness_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,"
            "\"samples\":%lu,\"rounds\":%lu,\"clamped\":%lu,\"unknown\":%lu},",
            m.stale.quantile_ms(0.5), m.stale.quantile_ms(0.9), m.stale.quantile_ms(0.99),
            m.stale.quantile_ms(0.999), m.stale.quantile_ms(1),
            static_cast<unsigned long>(m.stale.total), static_cast<unsigned long>(m.t.stale_rounds),
            static_cast<unsigned long>(m.t.stale_clamped),
            static_cast<unsigned long>(m.t.stale_unknown));
    appendf(
        j, "\"staleness_with_closed_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f,\"samples\":%lu},",
        m.stale_closed.quantile_ms(0.5), m.stale_closed.quantile_ms(0.99),
        m.stale_closed.quantile_ms(1), static_cast<unsigned long>(m.stale_closed.total));
    const double span = observer->last_ns > observer->first_ns
                            ? static_cast<double>(observer->last_ns - observer->first_ns) / 1e9
                            : 0;
    appendf(
        j,
        "\"observer\":{\"messages\":%lu,\"gaps\":%lu,\"other\":%lu,\"seconds\":%.3f,"
        "\"rate\":%.0f,\"first_after_connected_s\":%.3f},",
        static_cast<unsigned long>(observer->messages), static_cast<unsigned long>(observer->gaps),
        static_cast<unsigned long>(observer->other), span,
        span > 0 ? static_cast<double>(observer->messages - 1) / span : 0.0,
        observer->first_ns && t_all ? static_cast<double>(observer->first_ns - t_all) / 1e9 : 0.0);
  } else {
    j += "\"staleness_ms\":{},\"staleness_with_closed_ms\":{},\"observer\":{},";
  }
  appendf(j,
          "\"deflate\":%s,\"wire\":{\"frames\":%lu,\"payload_bytes\":%lu,\"bytes_per_frame\":%.1f,"
          "\"compressed_frames\":%lu,\"compressed_payload_bytes\":%lu,\"inflated_bytes\":%lu,"
          "\"inflate_errors\":%lu},",
          o.deflate ? "true" : "false", static_cast<unsigned long>(m.t.wire_frames),
          static_cast<unsigned long>(m.t.wire_payload_bytes),
          m.t.wire_frames
              ? static_cast<double>(m.t.wire_payload_bytes) / static_cast<double>(m.t.wire_frames)
              : 0.0,
          static_cast<unsigned long>(m.t.compressed_frames),
          static_cast<unsigned long>(m.t.compressed_wire_bytes),
          static_cast<unsigned long>(m.t.inflated_bytes),
          static_cast<unsigned long>(m.t.inflate_errors));
  appendf(j, "\"client_cpu_percent\":%.1f,\"window_seconds\":%.3f,", client_cpu, window_s);
  // CPU spent getting everyone connected (TCP, TLS, upgrade, subscribe): the client's here, the
  // server's in server.cpu_seconds_connecting.
  appendf(
      j, "\"client_cpu_seconds_connecting\":%.3f,",
      t_all ? static_cast<double>(m.cpu_connect_us + parent_cpu_go - parent_cpu_start) / 1e6 : 0.0);
  if (o.tls) {
    std::vector<std::string> d;
    for (size_t at = 0;;) {
      const size_t bar = m.tls_desc.find('|', at);
      d.push_back(m.tls_desc.substr(at, bar == std::string::npos ? bar : bar - at));
      if (bar == std::string::npos) break;
      at = bar + 1;
    }
    d.resize(5);
    appendf(
        j,
        "\"tls\":true,\"tls_info\":{\"version\":\"%s\",\"cipher\":\"%s\",\"group\":\"%s\","
        "\"signature\":\"%s\",\"server_key\":\"%s\",\"verify\":\"%s\",\"handshakes\":%lu,"
        "\"resumed\":%lu,\"handshake_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f}},",
        d[0].c_str(), d[1].c_str(), d[2].c_str(), d[3].c_str(), d[4].c_str(),
        o.ca.empty() ? "none" : "ca", static_cast<unsigned long>(m.t.tls_handshakes),
        static_cast<unsigned long>(m.t.tls_resumed), m.tls_hist.quantile_ms(0.5),
        m.tls_hist.quantile_ms(0.9), m.tls_hist.quantile_ms(0.99), m.tls_hist.quantile_ms(1));
  } else {
    j += "\"tls\":false,\"tls_info\":{},";
  }
  if (m.t.nats_errors)
    appendf(j, "\"nats_errors\":%lu,", static_cast<unsigned long>(m.t.nats_errors));
  j += "\"timeline\":[";
  // Every second of the window, empty ones included, so the recovery after a burst shows.
  size_t seconds = m.timeline.size();
  if (window_s > 0) seconds = std::max(seconds, static_cast<size_t>(std::ceil(window_s)));
  for (size_t s = 0; s < seconds; ++s) {
    const TimeHist* h = s < m.timeline.size() ? &m.timeline[s] : nullptr;
    appendf(j, "%s{\"s\":%zu,\"received\":%lu,\"p99_ms\":%.3f", s ? "," : "", s,
            static_cast<unsigned long>(h ? h->total : 0), h ? h->quantile_ms(0.99) : 0.0);
    if (observer) {  // staleness p99 of the samples taken in that second (none: null)
      const TimeHist* st = s < m.stale_timeline.size() ? &m.stale_timeline[s] : nullptr;
      if (st && st->total)
        appendf(j, ",\"stale_p99_ms\":%.3f", st->quantile_ms(0.99));
      else
        j += ",\"stale_p99_ms\":null";
    }
    if (!o.server_pids.empty()) {
      if (s < rss_timeline.size() && rss_timeline[s])
        appendf(j, ",\"rss_kb\":%ld", rss_timeline[s]);
      else
        j += ",\"rss_kb\":null";
    }
    j += "}";
  }
  j += "]}\n";
  std::fwrite(j.data(), 1, j.size(), stdout);
  std::fflush(stdout);

  // With latest, fewer deliveries than published is the point; what must hold instead is that
  // every channel of every open connection ends on the last message, counted exactly.
  const bool short_delivery = o.latest
                                  ? o.expect > 0 && (m.t.final_short || m.t.final_over ||
                                                     m.t.conflated_mismatch || m.t.order_errors)
                                  : o.expect > 0 && static_cast<double>(m.t.received) < expected;
  return (m.t.failed > 0 || short_delivery || m.t.gaps > 0) ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse_options(argc, argv, o)) return 2;
  install_signals();
  return run_parent(o);
}
