// blaster: the ceiling for odin-ws's fan-out. A deliberately trivial server that does only what a
// fan-out gateway must at the very least: take messages from NATS and write each one, as the
// gateway's envelope, to every WebSocket client subscribed to its channel. Benchmarks run the same
// load client and publisher against it and against the gateway, to show how close the gateway
// comes to what this machine's loopback can carry.
//
// What it leaves out on purpose: heartbeats, replay, resume, auth, limits, client requests (read
// and discarded), slow-consumer eviction (only a 64 MiB backlog cap), and threads. It is
// single-threaded because that is the measured ceiling on the bench machine: the load client
// shares its two cores, and a second blaster thread made latency worse, not better.
//
// What it keeps, because that is where the ceiling comes from: the shared part of each envelope is
// built once per message; per client only the frame header and {"seq":N, are made; and each loop
// turn first parses all available NATS input, then writes every touched connection once (writev),
// so under load many messages share one syscall.
//
//   blaster --port 3010 --nats 127.0.0.1:4222 [--prefix odin.token.]
// On SIGTERM/SIGINT it prints {"messages":M,"deliveries":D,"writev_calls":W} and exits 0.
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <signal.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bench_common.hpp"

namespace {

// Past this a client is not reading at all; close it rather than grow without bound.
constexpr size_t kMaxBacklog = 64u << 20;
// Deliveries parsed per loop turn at most: bounds the per-turn arenas (~50 bytes a delivery)
// while still putting dozens of messages into each client's writev at 10,000 clients.
constexpr size_t kTurnDeliveries = 512 * 1024;
// Unparsed NATS input held at most before parsing catches up; NATS buffers the rest for us.
constexpr size_t kMaxNatsBuffer = 16u << 20;
constexpr size_t kMaxHandshake = 8192;
// A frame header (at most 10 bytes, unmasked) + {"seq": + 20 digits + ','.
constexpr size_t kMaxHead = 10 + 7 + 20 + 1;
constexpr int kIovMax = IOV_MAX;

[[noreturn]] __attribute__((format(printf, 1, 2))) void die(const char* fmt, ...) {
  std::fprintf(stderr, "blaster: ");
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
  std::exit(1);
}

// Channel names and types are plain in practice; this only keeps a stray quote from breaking the
// envelope.
void append_json_string(std::string& s, std::string_view v) {
  s.push_back('"');
  for (char c : v) {
    if (c == '"' || c == '\\') {
      s.push_back('\\');
      s.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      s.append(buf);
    } else {
      s.push_back(c);
    }
  }
  s.push_back('"');
}

// An unmasked text frame header for a payload of n bytes; returns its length.
size_t frame_header(char* p, size_t n) {
  p[0] = static_cast<char>(0x81);
  if (n < 126) {
    p[1] = static_cast<char>(n);
    return 2;
  }
  if (n < 65536) {
    p[1] = 126;
    p[2] = static_cast<char>(n >> 8);
    p[3] = static_cast<char>(n);
    return 4;
  }
  p[1] = 127;
  for (int i = 0; i < 8; ++i)
    p[2 + i] = static_cast<char>(uint64_t{n} >> (56 - 8 * i));
  return 10;
}

std::string ws_accept(std::string_view key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string in(key);
  in.append(kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  unsigned char out[32];
  const int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      unsigned v = 0;
      auto r = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (r.ptr == s.data() + i + 3) {
        out.push_back(static_cast<char>(v));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

struct Conn {
  bool used = false;
  bool open = false;  // upgraded
  uint64_t seq = 0;
  std::string in;  // the handshake request until it is complete
  std::string backlog;
  size_t backlog_off = 0;
  std::vector<std::string> channels;
  // This turn's share of the iovec arena.
  uint32_t turn_count = 0;
  uint32_t iov_off = 0;
  uint32_t iov_n = 0;
};

struct Channel {
  std::vector<int> subs;
};

// One NATS message parsed this turn: its shared tail lives in the tail arena.
struct Pending {
  size_t tail_off;
  size_t tail_len;
  Channel* channel;
};

class Blaster {
 public:
  Blaster(int port, std::string nats, std::string prefix)
      : port_(port), nats_addr_(std::move(nats)), prefix_(std::move(prefix)) {}

  int run() {
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    setup_signals();
    connect_nats();
    listen_on();
    std::fprintf(stderr,
                 "blaster: listening on 127.0.0.1:%d, NATS %s subject %s>, fd limit %ld, one "
                 "thread\n",
                 port_, nats_addr_.c_str(), prefix_.c_str(), nofile_);
    std::vector<epoll_event> events(4096);
    while (!stop_) {
      // Parsed-but-unsent NATS input (the per-turn cap was hit) must not wait for an event.
      const int timeout = nats_more_ ? 0 : -1;
      int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), timeout);
      if (n < 0) {
        if (errno == EINTR) continue;
        die("epoll_wait: %s", std::strerror(errno));
      }
      bool nats_ready = false;
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        const uint32_t ev = events[i].events;
        if (fd == listen_fd_) {
          accept_all();
        } else if (fd == sig_fd_) {
          stop_ = true;
        } else if (fd == nats_fd_) {
          nats_ready = true;
        } else {
          on_client(fd, ev);
        }
      }
      if (nats_ready) read_nats();
      parse_nats();
      fan_out();
    }
    std::printf(
        "{\"messages\":%llu,\"deliveries\":%llu,\"writev_calls\":%llu,\"short_writes\":%llu,"
        "\"backlog_closes\":%llu}\n",
        static_cast<unsigned long long>(messages_), static_cast<unsigned long long>(deliveries_),
        static_cast<unsigned long long>(writev_calls_),
        static_cast<unsigned long long>(short_writes_), static_cast<unsigned long long>(evicted_));
    std::fflush(stdout);
    return 0;
  }

 private:
  void raise_nofile() {
    nofile_ = bench::raise_nofile_limit("blaster");
    conns_.resize(static_cast<size_t>(std::max(nofile_, 1024L)));
  }

  void setup_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    sig_fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sig_fd_ < 0) die("signalfd: %s", std::strerror(errno));
    add(sig_fd_, EPOLLIN);
  }

  void add(int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl: %s", std::strerror(errno));
  }

  void listen_on() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      die("bind 127.0.0.1:%d: %s", port_, std::strerror(errno));
    if (listen(listen_fd_, 4096) != 0) die("listen: %s", std::strerror(errno));
    add(listen_fd_, EPOLLIN);
  }

  // ---- NATS ------------------------------------------------------------------------------------

  void connect_nats() {
    const size_t colon = nats_addr_.rfind(':');
    if (colon == std::string::npos) die("--nats wants HOST:PORT");
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(nats_addr_.substr(0, colon).c_str(), nats_addr_.substr(colon + 1).c_str(),
                    &hints, &res) != 0 ||
        !res)
      die("cannot resolve %s", nats_addr_.c_str());
    int err = 0;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      nats_fd_ = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (nats_fd_ < 0) continue;
      if (connect(nats_fd_, ai->ai_addr, ai->ai_addrlen) == 0) break;
      err = errno;
      close(nats_fd_);
      nats_fd_ = -1;
    }
    freeaddrinfo(res);
    if (nats_fd_ < 0) die("cannot connect to NATS %s: %s", nats_addr_.c_str(), std::strerror(err));
    int one = 1;
    setsockopt(nats_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // No SO_RCVBUF: a fixed size would switch off autotuning, which grows further (tcp_rmem) and
    // lets NATS run ahead while a turn is busy writing.

    // Synchronous start: INFO, then CONNECT + SUB, and PONG proves the SUB is in place before
    // "listening" is printed (so a benchmark that waits for that line loses nothing).
    std::string line = nats_read_line();
    if (line.compare(0, 5, "INFO ") != 0) die("NATS did not greet with INFO: %s", line.c_str());
    std::string hello = "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\nSUB ";
    hello += prefix_;
    hello += "> 1\r\nPING\r\n";
    nats_send(hello);
    for (;;) {
      line = nats_read_line();
      if (line == "PONG") break;
      if (line == "PING") nats_send("PONG\r\n");
      if (line.compare(0, 4, "-ERR") == 0) die("NATS refused us: %s", line.c_str());
    }
    fcntl(nats_fd_, F_SETFL, fcntl(nats_fd_, F_GETFL) | O_NONBLOCK);
    add(nats_fd_, EPOLLIN);
  }

  std::string nats_read_line() {
    for (;;) {
      size_t eol = nats_in_.find("\r\n", nats_off_);
      if (eol != std::string::npos) {
        std::string line = nats_in_.substr(nats_off_, eol - nats_off_);
        nats_off_ = eol + 2;
        return line;
      }
      pollfd p{nats_fd_, POLLIN, 0};
      if (poll(&p, 1, 5000) <= 0) die("NATS did not answer within 5 s");
      char buf[4096];
      ssize_t n = recv(nats_fd_, buf, sizeof buf, 0);
      if (n <= 0) die("NATS closed the connection");
      nats_in_.append(buf, static_cast<size_t>(n));
    }
  }

  void nats_send(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = send(nats_fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
          pollfd p{nats_fd_, POLLOUT, 0};
          poll(&p, 1, 1000);
          continue;
        }
        die("write to NATS: %s", std::strerror(errno));
      }
      s.remove_prefix(static_cast<size_t>(n));
    }
  }

  void read_nats() {
    if (nats_off_ > 0) {
      nats_in_.erase(0, nats_off_);
      nats_off_ = 0;
    }
    while (nats_in_.size() < kMaxNatsBuffer) {
      const size_t old = nats_in_.size();
      nats_in_.resize(old + (256 << 10));
      ssize_t n = recv(nats_fd_, nats_in_.data() + old, 256 << 10, 0);
      nats_in_.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
      if (n > 0) continue;
      if (n == 0) die("NATS closed the connection");
      if (errno == EAGAIN || errno == EINTR) break;
      die("read from NATS: %s", std::strerror(errno));
    }
  }

  // Parses complete NATS operations and builds each message's shared tail, until the input is
  // used up or this turn has enough deliveries.
  void parse_nats() {
    tails_.clear();
    pending_.clear();
    size_t turn_deliveries = 0;
    int64_t ts = 0;
    nats_more_ = false;
    const char* base = nats_in_.data();
    for (;;) {
      if (turn_deliveries >= kTurnDeliveries) {
        nats_more_ = true;
        break;
      }
      const size_t eol = nats_in_.find("\r\n", nats_off_);
      if (eol == std::string::npos) break;
      std::string_view line(base + nats_off_, eol - nats_off_);
      const bool hmsg = line.starts_with("HMSG ");
      if (hmsg || line.starts_with("MSG ")) {
        // MSG <subject> <sid> [reply] <size> / HMSG <subject> <sid> [reply] <hdr> <total>
        std::string_view tok[6];
        int nt = 0;
        size_t p = 0;
        while (p < line.size() && nt < 6) {
          size_t q = line.find(' ', p);
          if (q == std::string_view::npos) q = line.size();
          if (q > p) tok[nt++] = line.substr(p, q - p);
          p = q + 1;
        }
        if (nt < (hmsg ? 5 : 4))
          die("bad NATS line: %.*s", static_cast<int>(line.size()), line.data());
        size_t hdr = 0, total = 0;
        const std::string_view& last = tok[nt - 1];
        std::from_chars(last.data(), last.data() + last.size(), total);
        if (hmsg) {
          const std::string_view& h = tok[nt - 2];
          std::from_chars(h.data(), h.data() + h.size(), hdr);
        }
        const size_t body = eol + 2;
        if (nats_in_.size() < body + total + 2) break;  // the payload is not all here yet
        std::string_view headers(base + body, hdr);
        std::string_view payload(base + body + hdr, total - hdr);
        nats_off_ = body + total + 2;
        if (ts == 0) ts = bench::realtime_ns() / 1'000'000;
        turn_deliveries += on_message(tok[1], headers, payload, ts);
        continue;
      }
      nats_off_ = eol + 2;
      if (line == "PING") {
        nats_send("PONG\r\n");
      } else if (line.starts_with("-ERR")) {
        die("NATS error: %.*s", static_cast<int>(line.size()), line.data());
      }
      // PONG, +OK and INFO updates need nothing.
    }
  }

  size_t on_message(std::string_view subject, std::string_view headers, std::string_view payload,
                    int64_t ts) {
    if (!subject.starts_with(prefix_)) return 0;
    ++messages_;
    key_.assign(subject.substr(prefix_.size()));
    auto it = channels_.find(key_);
    if (it == channels_.end() || it->second.subs.empty()) return 0;
    std::string_view type = "message";
    // Headers: NATS/1.0\r\nName: value\r\n...\r\n
    size_t p = headers.find("\r\n");
    while (p != std::string_view::npos && p + 2 < headers.size()) {
      p += 2;
      size_t e = headers.find("\r\n", p);
      if (e == std::string_view::npos) e = headers.size();
      std::string_view h = headers.substr(p, e - p);
      if (h.size() > 5 && strncasecmp(h.data(), "type:", 5) == 0) {
        h.remove_prefix(5);
        while (!h.empty() && (h.front() == ' ' || h.front() == '\t'))
          h.remove_prefix(1);
        while (!h.empty() && (h.back() == ' ' || h.back() == '\t'))
          h.remove_suffix(1);
        if (!h.empty()) type = h;
      }
      p = e;
    }
    const size_t off = tails_.size();
    tails_.append("\"ts\":");
    bench::append_decimal(tails_, static_cast<uint64_t>(ts));
    tails_.append(",\"type\":");
    append_json_string(tails_, type);
    tails_.append(",\"channel\":");
    append_json_string(tails_, key_);
    tails_.append(",\"data\":");
    if (payload.empty())
      tails_.append("null");
    else
      tails_.append(payload);
    tails_.push_back('}');
    pending_.push_back({off, tails_.size() - off, &it->second});
    return it->second.subs.size();
  }

  // ---- fan-out ---------------------------------------------------------------------------------

  void fan_out() {
    if (pending_.empty()) return;
    // Pass 1: how many messages each connection gets, to give it a contiguous iovec range.
    touched_.clear();
    size_t total = 0;
    for (const Pending& m : pending_) {
      for (int fd : m.channel->subs) {
        Conn& c = conns_[static_cast<size_t>(fd)];
        if (c.turn_count++ == 0) touched_.push_back(fd);
      }
      total += m.channel->subs.size();
    }
    if (iov_.size() < 2 * total) iov_.resize(2 * total);
    if (heads_.size() < kMaxHead * total) heads_.resize(kMaxHead * total);
    uint32_t off = 0;
    for (int fd : touched_) {
      Conn& c = conns_[static_cast<size_t>(fd)];
      c.iov_off = off;
      c.iov_n = 0;
      off += 2 * c.turn_count;
      c.turn_count = 0;
    }
    // Pass 2: per delivery only the frame header and {"seq":N, are made.
    char* h = heads_.data();
    for (const Pending& m : pending_) {
      char* tail = tails_.data() + m.tail_off;
      for (int fd : m.channel->subs) {
        Conn& c = conns_[static_cast<size_t>(fd)];
        const uint64_t seq = ++c.seq;
        const size_t json_head = 8 + bench::decimal_digits(seq);  // {"seq":N,
        char* start = h;
        h += frame_header(h, json_head + m.tail_len);
        std::memcpy(h, "{\"seq\":", 7);
        h = std::to_chars(h + 7, h + 27, seq).ptr;
        *h++ = ',';
        iovec* v = &iov_[c.iov_off + c.iov_n];
        v[0] = {start, static_cast<size_t>(h - start)};
        v[1] = {tail, m.tail_len};
        c.iov_n += 2;
      }
      deliveries_ += m.channel->subs.size();
    }
    // Pass 3: one writev per touched connection (IOV_MAX iovecs at a time).
    for (int fd : touched_)
      write_turn(fd);
  }

  void write_turn(int fd) {
    Conn& c = conns_[static_cast<size_t>(fd)];
    iovec* v = &iov_[c.iov_off];
    size_t n = c.iov_n;
    if (c.backlog.size() > c.backlog_off) {  // keep order behind what is still queued
      append_backlog(c, v, n, 0);
      check_backlog(fd);
      return;
    }
    while (n > 0) {
      const int chunk = static_cast<int>(std::min<size_t>(n, kIovMax));
      size_t want = 0;
      for (int i = 0; i < chunk; ++i)
        want += v[i].iov_len;
      ssize_t w = writev(fd, v, chunk);
      ++writev_calls_;
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) {
          close_conn(fd);
          return;
        }
        w = 0;
      }
      if (static_cast<size_t>(w) == want) {
        v += chunk;
        n -= static_cast<size_t>(chunk);
        continue;
      }
      // The kernel took part: the rest goes to the backlog, written on EPOLLOUT.
      ++short_writes_;
      append_backlog(c, v, n, static_cast<size_t>(w));
      if (w > 0) flush(fd);  // until EAGAIN, so that EPOLLOUT's edge is armed
      check_backlog(fd);
      return;
    }
  }

  void append_backlog(Conn& c, const iovec* v, size_t n, size_t skip) {
    for (size_t i = 0; i < n; ++i) {
      const size_t len = v[i].iov_len;
      if (skip >= len) {
        skip -= len;
        continue;
      }
      c.backlog.append(static_cast<const char*>(v[i].iov_base) + skip, len - skip);
      skip = 0;
    }
  }

  void check_backlog(int fd) {
    Conn& c = conns_[static_cast<size_t>(fd)];
    if (c.used && c.backlog.size() - c.backlog_off > kMaxBacklog) {
      ++evicted_;
      close_conn(fd);
    }
  }

  // Writes the backlog until it is empty or the socket is full.
  void flush(int fd) {
    Conn& c = conns_[static_cast<size_t>(fd)];
    while (c.backlog.size() > c.backlog_off) {
      ssize_t w = write(fd, c.backlog.data() + c.backlog_off, c.backlog.size() - c.backlog_off);
      ++writev_calls_;
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        close_conn(fd);
        return;
      }
      c.backlog_off += static_cast<size_t>(w);
    }
    if (c.backlog_off == c.backlog.size()) {
      std::string().swap(c.backlog);  // an idle connection holds no buffer
      c.backlog_off = 0;
    } else if (c.backlog_off > (1u << 20) && c.backlog_off > c.backlog.size() / 2) {
      c.backlog.erase(0, c.backlog_off);
      c.backlog_off = 0;
    }
  }

  // ---- clients ---------------------------------------------------------------------------------

  void accept_all() {
    for (;;) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR) continue;
        if ((errno == EMFILE || errno == ENFILE) && !warned_emfile_) {
          warned_emfile_ = true;
          std::fprintf(stderr, "blaster: out of file descriptors at %ld\n", nofile_);
        }
        return;
      }
      if (static_cast<size_t>(fd) >= conns_.size()) conns_.resize(static_cast<size_t>(fd) + 1);
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      Conn& c = conns_[static_cast<size_t>(fd)];
      c = Conn{};
      c.used = true;
      // Edge-triggered: EPOLLOUT then only fires after a write came up short.
      add(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    }
  }

  void on_client(int fd, uint32_t ev) {
    Conn& c = conns_[static_cast<size_t>(fd)];
    if (!c.used) return;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      char buf[16384];
      for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
          if (!c.open && !on_handshake_bytes(fd, buf, static_cast<size_t>(n))) return;
          continue;  // after the upgrade: read and discard
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        close_conn(fd);
        return;
      }
    }
    if ((ev & EPOLLOUT) && c.backlog.size() > c.backlog_off) flush(fd);
  }

  bool on_handshake_bytes(int fd, const char* p, size_t n) {
    Conn& c = conns_[static_cast<size_t>(fd)];
    c.in.append(p, n);
    const size_t end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (c.in.size() > kMaxHandshake) return reject(fd);
      return true;
    }
    std::string_view req(c.in.data(), end + 2);
    if (!req.starts_with("GET ")) return reject(fd);
    const size_t sp = req.find(' ', 4);
    if (sp == std::string_view::npos) return reject(fd);
    std::string_view target = req.substr(4, sp - 4);
    std::string_view path = target.substr(0, target.find('?'));
    if (path != "/ws") return reject(fd);
    std::string_view key;
    size_t pos = req.find("\r\n");
    while (pos != std::string_view::npos && pos + 2 < req.size()) {
      pos += 2;
      size_t e = req.find("\r\n", pos);
      std::string_view h = req.substr(pos, e - pos);
      if (h.size() > 18 && strncasecmp(h.data(), "sec-websocket-key:", 18) == 0) {
        key = h.substr(18);
        while (!key.empty() && key.front() == ' ')
          key.remove_prefix(1);
        while (!key.empty() && key.back() == ' ')
          key.remove_suffix(1);
      }
      pos = e;
    }
    if (key.empty()) return reject(fd);

    // channels=A,B from the query
    std::vector<std::string> chans;
    const size_t q = target.find('?');
    if (q != std::string_view::npos) {
      std::string_view query = target.substr(q + 1);
      while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view kv = query.substr(0, amp);
        if (kv.starts_with("channels=")) {
          std::string list = percent_decode(kv.substr(9));
          size_t s = 0;
          while (s <= list.size()) {
            size_t comma = list.find(',', s);
            if (comma == std::string::npos) comma = list.size();
            if (comma > s) {
              std::string name = list.substr(s, comma - s);
              if (std::find(chans.begin(), chans.end(), name) == chans.end())
                chans.push_back(std::move(name));
            }
            s = comma + 1;
          }
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
      }
    }

    std::string out =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: ";
    out += ws_accept(key);
    out += "\r\n\r\n";
    std::string welcome = "{\"type\":\"welcome\",\"ts\":";
    bench::append_decimal(welcome, static_cast<uint64_t>(bench::realtime_ns() / 1'000'000));
    welcome +=
        ",\"data\":{\"session\":\"x\",\"heartbeat_ms\":30000,\"replay_size\":0,\"resume_ttl_ms\":"
        "0}}";
    std::string subscribed = "{\"type\":\"subscribed\",\"data\":{\"channels\":[";
    for (size_t i = 0; i < chans.size(); ++i) {
      if (i) subscribed.push_back(',');
      append_json_string(subscribed, chans[i]);
    }
    subscribed += "]}}";
    for (const std::string* f : {&welcome, &subscribed}) {
      char hdr[10];
      out.append(hdr, frame_header(hdr, f->size()));
      out += *f;
    }
    std::string().swap(c.in);
    c.open = true;
    for (const std::string& name : chans)
      channels_[name].subs.push_back(fd);
    c.channels = std::move(chans);
    c.backlog = std::move(out);
    c.backlog_off = 0;
    flush(fd);
    return c.used;
  }

  bool reject(int fd) {
    static constexpr std::string_view kBad =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 34\r\n"
        "Connection: close\r\n\r\n{\"error\":\"not a WebSocket upgrade\"}";
    ssize_t ignored = send(fd, kBad.data(), kBad.size(), MSG_NOSIGNAL);
    (void)ignored;
    close_conn(fd);
    return false;
  }

  void close_conn(int fd) {
    Conn& c = conns_[static_cast<size_t>(fd)];
    if (!c.used) return;
    for (const std::string& name : c.channels) {
      auto it = channels_.find(name);
      if (it == channels_.end()) continue;
      auto& subs = it->second.subs;
      auto s = std::find(subs.begin(), subs.end(), fd);
      if (s != subs.end()) {
        *s = subs.back();
        subs.pop_back();
      }
    }
    c = Conn{};
    close(fd);  // also removes it from the epoll set
  }

  const int port_;
  const std::string nats_addr_;
  const std::string prefix_;
  long nofile_ = 0;
  int ep_ = -1;
  int sig_fd_ = -1;
  int listen_fd_ = -1;
  int nats_fd_ = -1;
  bool stop_ = false;
  bool warned_emfile_ = false;
  bool nats_more_ = false;  // the per-turn cap left complete messages unparsed
  std::string nats_in_;
  size_t nats_off_ = 0;
  std::string key_;
  std::vector<Conn> conns_;
  // Channels are never erased, so a Channel* stays valid (the map's nodes do not move).
  std::unordered_map<std::string, Channel> channels_;
  // Per-turn arenas, reused: shared tails, per-delivery heads, and the iovecs pointing into both.
  std::string tails_;
  std::vector<Pending> pending_;
  std::vector<char> heads_;
  std::vector<iovec> iov_;
  std::vector<int> touched_;
  uint64_t messages_ = 0;
  uint64_t deliveries_ = 0;
  uint64_t writev_calls_ = 0;
  uint64_t short_writes_ = 0;
  uint64_t evicted_ = 0;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: blaster --port P --nats HOST:PORT [--prefix odin.token.]\n"
               "  single-threaded on purpose (the measured ceiling); no --threads\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int port = 3010;
  std::string nats;
  std::string prefix = "odin.token.";
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") usage();
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    if (a == "--port")
      port = std::atoi(v);
    else if (a == "--nats")
      nats = v;
    else if (a == "--prefix")
      prefix = v;
    else
      usage();
  }
  if (nats.empty() || port <= 0 || port > 65535) usage();
  Blaster b(port, std::move(nats), std::move(prefix));
  return b.run();
}
