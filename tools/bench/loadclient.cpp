// loadclient: a cheap WebSocket load client for odin-ws measurements. One epoll loop, N
// connections from source addresses 127.0.0.2.. (so more than one port range is available), each
// subscribed through ?channels= to K of C channels "ch0".."ch{C-1}". Checks per-connection seq
// contiguity and measures, for every data message carrying "t":<unix ns> in its data, the latency
// of each delivery and the time until the last connection received it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

struct Options {
  int port = 3002;
  int connections = 1000;
  int channels = 1;
  int per_conn = 1;
  double duration_s = 10;  // after all are connected
  long expect = 0;         // messages each connection should get (0 = unknown)
  std::string ready_file;
};

struct Conn {
  int fd = -1;
  bool upgraded = false;
  std::string in;  // unparsed bytes (partial frame or HTTP head)
  uint64_t last_seq = 0;
  uint64_t received = 0;
};

struct Arrival {
  int count = 0;
  int64_t last_ns = 0;
};

double percentile(std::vector<int64_t>& v, double q) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return static_cast<double>(v[k]) / 1e6;
}

volatile sig_atomic_t g_stop = 0;

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--port")
      o.port = std::atoi(v);
    else if (k == "--connections")
      o.connections = std::atoi(v);
    else if (k == "--channels")
      o.channels = std::atoi(v);
    else if (k == "--per-conn")
      o.per_conn = std::atoi(v);
    else if (k == "--duration")
      o.duration_s = std::atof(v);
    else if (k == "--expect")
      o.expect = std::atol(v);
    else if (k == "--ready-file")
      o.ready_file = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  signal(SIGINT, [](int) { g_stop = 1; });
  signal(SIGTERM, [](int) { g_stop = 1; });

  int ep = epoll_create1(0);
  std::vector<Conn> conns(static_cast<size_t>(o.connections));
  const int64_t t_start = now_ns();
  int failed = 0;
  for (int i = 0; i < o.connections; ++i) {
    Conn& c = conns[static_cast<size_t>(i)];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c.fd < 0) {
      ++failed;
      continue;
    }
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000002 + static_cast<uint32_t>(i % 253));
    bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof(src));
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(static_cast<uint16_t>(o.port));
    dst.sin_addr.s_addr = htonl(0x7f000001);
    connect(c.fd, reinterpret_cast<sockaddr*>(&dst), sizeof(dst));
    std::string path = "/ws?channels=";
    for (int j = 0; j < o.per_conn; ++j) {
      if (j) path += ",";
      path += "ch" + std::to_string((i + j) % o.channels);
    }
    c.in = "GET " + path +
           " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }

  std::vector<int64_t> latencies;
  latencies.reserve(1 << 20);
  std::unordered_map<int64_t, Arrival> arrivals;
  uint64_t gaps = 0, dups = 0, received = 0;
  int upgraded = 0, closed = 0;
  int64_t t_all_connected = 0;
  std::vector<char> buf(1 << 16);
  std::vector<epoll_event> events(1024);
  const int64_t hard_stop = t_start + static_cast<int64_t>((o.duration_s + 60) * 1e9);

  while (!g_stop) {
    const int64_t now = now_ns();
    if (now > hard_stop) break;
    if (t_all_connected && now - t_all_connected > static_cast<int64_t>(o.duration_s * 1e9)) break;
    if (t_all_connected && o.expect &&
        received >= static_cast<uint64_t>(o.expect) * static_cast<uint64_t>(upgraded))
      break;
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    for (int e = 0; e < n; ++e) {
      Conn& c = conns[events[static_cast<size_t>(e)].data.u32];
      if (!c.upgraded && (events[static_cast<size_t>(e)].events & EPOLLOUT) && !c.in.empty() &&
          c.in.rfind("GET ", 0) == 0) {
        ssize_t w = write(c.fd, c.in.data(), c.in.size());
        if (w == static_cast<ssize_t>(c.in.size())) {
          c.in.clear();
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u32 = events[static_cast<size_t>(e)].data.u32;
          epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        }
        continue;
      }
      if (!(events[static_cast<size_t>(e)].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      for (;;) {
        ssize_t r = read(c.fd, buf.data(), buf.size());
        if (r <= 0) {
          if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
            close(c.fd);
            ++closed;
          }
          break;
        }
        const int64_t t_read = now_ns();
        c.in.append(buf.data(), static_cast<size_t>(r));
        size_t pos = 0;
        if (!c.upgraded) {
          size_t end = c.in.find("\r\n\r\n");
          if (end == std::string::npos) continue;
          if (c.in.compare(0, 12, "HTTP/1.1 101") != 0) {
            ++failed;
            epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
            close(c.fd);
            break;
          }
          c.upgraded = true;
          if (++upgraded + failed == o.connections) t_all_connected = now_ns();
          pos = end + 4;
        }
        while (c.in.size() - pos >= 2) {
          const auto* p = reinterpret_cast<const unsigned char*>(c.in.data() + pos);
          uint64_t len = p[1] & 0x7f;
          size_t h = 2;
          if (len == 126) {
            if (c.in.size() - pos < 4) break;
            len = (uint64_t{p[2]} << 8) | p[3];
            h = 4;
          } else if (len == 127) {
            if (c.in.size() - pos < 10) break;
            len = 0;
            for (int i = 0; i < 8; ++i)
              len = (len << 8) | p[2 + i];
            h = 10;
          }
          if (c.in.size() - pos < h + len) break;
          std::string_view payload(c.in.data() + pos + h, len);
          pos += h + len;
          if ((p[0] & 0x0f) != 1 || payload.rfind("{\"seq\":", 0) != 0) continue;
          const uint64_t seq = std::strtoull(payload.data() + 7, nullptr, 10);
          if (seq <= c.last_seq)
            ++dups;
          else if (seq != c.last_seq + 1)
            gaps += seq - c.last_seq - 1;
          c.last_seq = std::max(c.last_seq, seq);
          ++c.received;
          ++received;
          size_t data = payload.find("\"data\":");
          size_t t = data == std::string_view::npos ? data : payload.find("\"t\":", data);
          if (t != std::string_view::npos) {
            const int64_t sent = std::strtoll(payload.data() + t + 4, nullptr, 10);
            latencies.push_back(t_read - sent);
            Arrival& a = arrivals[sent];
            ++a.count;
            a.last_ns = std::max(a.last_ns, t_read);
          }
        }
        c.in.erase(0, pos);
      }
    }
    if (!o.ready_file.empty() && t_all_connected) {
      std::ofstream(o.ready_file) << upgraded << "\n";
      o.ready_file.clear();
    }
  }

  std::vector<int64_t> reach_all;
  for (auto& [sent, a] : arrivals) {
    if (a.count == upgraded) reach_all.push_back(a.last_ns - sent);
  }
  const double connect_s =
      t_all_connected ? static_cast<double>(t_all_connected - t_start) / 1e9 : 0;
  const double expected = static_cast<double>(o.expect) * upgraded;
  std::printf(
      "{\"connections\":%d,\"failed\":%d,\"closed\":%d,\"connect_seconds\":%.3f,"
      "\"connections_per_second\":%.0f,\"received\":%lu,\"delivery_percent\":%.3f,\"gaps\":%lu,"
      "\"duplicates\":%lu,\"latency_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"p999\":%.2f,"
      "\"max\":%.2f},\"messages_complete\":%zu,\"reach_all_ms\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":"
      "%.2f}}\n",
      upgraded, failed, closed, connect_s, connect_s > 0 ? upgraded / connect_s : 0.0,
      static_cast<unsigned long>(received),
      expected > 0 ? 100.0 * static_cast<double>(received) / expected : 0.0,
      static_cast<unsigned long>(gaps), static_cast<unsigned long>(dups),
      percentile(latencies, 0.5), percentile(latencies, 0.9), percentile(latencies, 0.99),
      percentile(latencies, 0.999), percentile(latencies, 1.0), reach_all.size(),
      percentile(reach_all, 0.5), percentile(reach_all, 0.99), percentile(reach_all, 1.0));
  return (failed || (o.expect && received < static_cast<uint64_t>(expected)) || gaps) ? 1 : 0;
}
