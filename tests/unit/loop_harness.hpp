// Test support for the runtime units that need a socket (deliver, drain, the HTTP phase, the
// WebSocket client, resume across workers): a real TCP pair over 127.0.0.1 whose server end a
// test EventLoop adopts and whose client end the test drives by hand (raw HTTP, masked frames),
// bounded pumps of the loops' io_context (their threads never start), and a reader of the
// server's unmasked frames. Nothing here sleeps as an assertion: every wait is a loop with a
// deadline that fails the test when it passes.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "app/worker.hpp"
#include "net/connection.hpp"
#include "net/event_loop.hpp"
#include "session/client.hpp"
#include "session/client_thread.hpp"
#include "session/session.hpp"

namespace odin::testing {

inline constexpr std::chrono::milliseconds kWaitLimit{5000};

// An fd closed on destruction (unless released).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

 private:
  int fd_ = -1;
};

// Both ends of a TCP connection over 127.0.0.1, through a listener of its own on port 0. The
// server end is non-blocking (as an accepted socket of the gateway is) and meant for
// EventLoop::adopt; the client end is non-blocking too: the test reads it between pumps.
struct TcpPair {
  Fd server;
  Fd client;
};

// `client_rcvbuf` / `server_sndbuf` (0: the kernel's default) shrink the buffers between the
// two ends, for a client that does not keep up. The receive buffer is set before connecting, so
// the window is announced with it.
inline TcpPair make_tcp_pair(int client_rcvbuf = 0, int server_sndbuf = 0) {
  TcpPair pair;
  Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
  EXPECT_GE(listener.get(), 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::listen(listener.get(), 1), 0);
  socklen_t len = sizeof addr;
  EXPECT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);

  pair.client = Fd(::socket(AF_INET, SOCK_STREAM, 0));
  if (client_rcvbuf > 0) {
    ::setsockopt(pair.client.get(), SOL_SOCKET, SO_RCVBUF, &client_rcvbuf, sizeof client_rcvbuf);
  }
  EXPECT_EQ(::connect(pair.client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  pair.server = Fd(::accept(listener.get(), nullptr, nullptr));
  EXPECT_GE(pair.server.get(), 0);
  if (server_sndbuf > 0) {
    ::setsockopt(pair.server.get(), SOL_SOCKET, SO_SNDBUF, &server_sndbuf, sizeof server_sndbuf);
  }
  const int one = 1;
  ::setsockopt(pair.server.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(pair.client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  for (int fd : {pair.server.get(), pair.client.get()})
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return pair;
}

// Hands the server end of `pair` to `loop`, started with the handler `make_handler` builds, and
// reads what already arrived. The loop owns the socket from here on.
inline net::Connection* adopt_server_end(
    net::EventLoop& loop, TcpPair& pair,
    std::function<std::unique_ptr<net::ConnectionHandler>(net::Connection&)> make_handler) {
  net::DetachedSocket socket;
  socket.fd = pair.server.release();
  socket.loopback = true;
  net::Connection* conn = loop.adopt(std::move(socket), std::move(make_handler));
  EXPECT_NE(conn, nullptr);
  if (conn) conn->resume_reading();
  return conn;
}

// Runs every ready handler of `loops` once per round (restarting an io_context that ran out of
// work), until `done` holds or kWaitLimit passes. Returns whether `done` held.
inline bool pump_until(std::initializer_list<net::EventLoop*> loops,
                       const std::function<bool()>& done,
                       std::chrono::milliseconds limit = kWaitLimit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    for (net::EventLoop* loop : loops) {
      if (loop->io().stopped()) loop->io().restart();
      loop->io().poll();
    }
    if (done()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // pacing, not an assertion
  }
}

// Runs ready handlers until none is left (no waiting for sockets).
inline void run_ready(std::initializer_list<net::EventLoop*> loops) {
  for (int round = 0; round < 100; ++round) {
    size_t ran = 0;
    for (net::EventLoop* loop : loops) {
      if (loop->io().stopped()) loop->io().restart();
      ran += loop->io().poll();
    }
    if (ran == 0) return;
  }
}

// Writes all of `bytes` to the client end (retrying while the kernel is full).
inline void send_all(int fd, std::string_view bytes) {
  const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    ASSERT_TRUE(n < 0 && (errno == EAGAIN || errno == EINTR)) << "send failed: " << errno;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "client end never took the bytes";
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

// What the client end has read so far, and whether it saw EOF (or a reset).
struct ClientEnd {
  explicit ClientEnd(int client_fd) : fd(client_fd) {}
  int fd = -1;
  std::string bytes;
  bool eof = false;
  bool reset = false;

  // Reads whatever is waiting, without blocking.
  void read_available() {
    char buffer[65536];
    while (!eof) {
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n > 0) {
        bytes.append(buffer, static_cast<size_t>(n));
      } else if (n == 0) {
        eof = true;
      } else if (errno == EINTR) {
        continue;
      } else {
        if (errno == ECONNRESET) reset = eof = true;
        return;
      }
    }
  }
  // Pumps `loops` and reads until at least `n` bytes arrived (or EOF, or the limit).
  bool read_at_least(std::initializer_list<net::EventLoop*> loops, size_t n) {
    return pump_until(loops, [&] {
      read_available();
      return bytes.size() >= n || eof;
    });
  }
  bool read_until_eof(std::initializer_list<net::EventLoop*> loops) {
    return pump_until(loops, [&] {
      read_available();
      return eof;
    });
  }
  // Removes and returns the first `n` bytes read.
  std::string take(size_t n) {
    std::string out = bytes.substr(0, n);
    bytes.erase(0, std::min(n, bytes.size()));
    return out;
  }
};

// Whether every byte the client sent reached the server end and was read from it there: the
// client's send queue is empty (delivered and acknowledged) and nothing waits in the server's
// receive queue.
inline bool consumed_by_server(int client_fd, int server_fd) {
  int unsent = 0;
  int unread = 0;
  if (::ioctl(client_fd, SIOCOUTQ, &unsent) != 0) return false;
  if (::ioctl(server_fd, FIONREAD, &unread) != 0) return false;
  return unsent == 0 && unread == 0;
}

// A client frame (RFC 6455 5.3: masked), FIN set.
inline std::string masked_frame(uint8_t opcode, std::string_view payload) {
  static constexpr char mask[4] = {'\x11', '\x22', '\x33', '\x44'};
  std::string out;
  out.push_back(static_cast<char>(0x80 | opcode));
  if (payload.size() < 126) {
    out.push_back(static_cast<char>(0x80 | payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    out.push_back(static_cast<char>(0x80 | 126));
    out.push_back(static_cast<char>(payload.size() >> 8));
    out.push_back(static_cast<char>(payload.size()));
  } else {
    out.push_back(static_cast<char>(0x80 | 127));
    for (int i = 0; i < 8; ++i)
      out.push_back(static_cast<char>(static_cast<uint64_t>(payload.size()) >> (56 - 8 * i)));
  }
  out.append(mask, 4);
  for (size_t i = 0; i < payload.size(); ++i)
    out.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
  return out;
}

inline std::string masked_text(std::string_view payload) {
  return masked_frame(0x1, payload);
}

// A close frame's payload: the code (big-endian), then the reason.
inline std::string close_payload(uint16_t code, std::string_view reason = {}) {
  std::string out;
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code & 0xff));
  out.append(reason);
  return out;
}

// One server frame (unmasked, as the gateway writes them).
struct Frame {
  uint8_t opcode = 0;
  bool fin = false;
  std::string payload;
};

// Parses one whole server frame off the front of `bytes`; nullopt when it is not complete yet.
// A masked frame from the server is a protocol violation: reported as opcode 0xFF.
inline std::optional<Frame> pop_frame(std::string& bytes) {
  if (bytes.size() < 2) return std::nullopt;
  const auto b0 = static_cast<uint8_t>(bytes[0]);
  const auto b1 = static_cast<uint8_t>(bytes[1]);
  size_t header = 2;
  uint64_t length = b1 & 0x7f;
  if (length == 126) {
    if (bytes.size() < 4) return std::nullopt;
    length = (uint64_t{static_cast<uint8_t>(bytes[2])} << 8) | static_cast<uint8_t>(bytes[3]);
    header = 4;
  } else if (length == 127) {
    if (bytes.size() < 10) return std::nullopt;
    length = 0;
    for (int i = 0; i < 8; ++i)
      length = (length << 8) | static_cast<uint8_t>(bytes[2 + static_cast<size_t>(i)]);
    header = 10;
  }
  if (bytes.size() < header + length) return std::nullopt;
  Frame frame;
  frame.opcode = (b1 & 0x80) ? 0xFF : (b0 & 0x0f);
  frame.fin = (b0 & 0x80) != 0;
  frame.payload = bytes.substr(header, length);
  bytes.erase(0, header + length);
  return frame;
}

// Pumps `loops` and reads until `count` whole frames arrived; returns them (fewer on EOF or
// when the limit passed: the caller's size assertion says so).
inline std::vector<Frame> read_frames(ClientEnd& end, std::initializer_list<net::EventLoop*> loops,
                                      size_t count) {
  std::vector<Frame> frames;
  pump_until(loops, [&] {
    end.read_available();
    while (frames.size() < count) {
      std::optional<Frame> frame = pop_frame(end.bytes);
      if (!frame) break;
      frames.push_back(std::move(*frame));
    }
    return frames.size() >= count || end.eof;
  });
  return frames;
}

// The value of a JSON member that is a plain number or a string without escapes, found by text
// (the replies are the gateway's own, in a fixed member order): enough for `"seq":N` or
// `"session":"..."`.
inline std::string json_member(std::string_view json, std::string_view key) {
  const std::string needle = "\"" + std::string(key) + "\":";
  const size_t at = json.find(needle);
  if (at == std::string_view::npos) return {};
  size_t begin = at + needle.size();
  if (begin < json.size() && json[begin] == '"') {
    const size_t end = json.find('"', begin + 1);
    return std::string(json.substr(begin + 1, end - begin - 1));
  }
  size_t end = begin;
  while (end < json.size() && json[end] != ',' && json[end] != '}')
    ++end;
  return std::string(json.substr(begin, end - begin));
}

// What a Worker is given in a test: no listener, no TLS, no broker, no authentication.
inline net::LoopParts test_loop_parts() {
  net::LoopParts parts;
  parts.make_handler = [](net::Connection&) -> std::unique_ptr<net::ConnectionHandler> {
    return nullptr;
  };
  parts.tls_context = [] { return std::shared_ptr<const net::TlsContext>(); };
  return parts;
}

inline session::ClientThreadParts test_client_parts() {
  session::ClientThreadParts parts;
  parts.jwt_verifier = [] { return std::shared_ptr<const auth::JwtVerifier>(); };
  return parts;
}

// One Worker on its own, index 0, its own only peer (the detached-session budget divides by the
// thread count, as the Gateway sets it).
struct SoloWorker : app::Worker {
  explicit SoloWorker(const ops::Config& config)
      : app::Worker(config, 0, test_loop_parts(), test_client_parts()) {
    clients().set_peers({&clients()});
  }
};

// A WebSocket client as the upgrade leaves it (without the 101 and the welcome): the server end
// of `pair` adopted by `worker`'s loop with a Client bound to a new session `id`, reading.
struct AttachedClient {
  net::Connection* conn = nullptr;
  session::Client* client = nullptr;
  session::Session* session = nullptr;
};

inline AttachedClient attach_client(app::Worker& worker, TcpPair& pair, session::SessionId id) {
  AttachedClient out;
  net::DetachedSocket socket;
  socket.fd = pair.server.release();
  socket.loopback = true;
  out.conn = worker.loop().adopt(std::move(socket), [&](net::Connection& conn) {
    auto client = std::make_unique<session::Client>(worker.clients(), conn, core::CountedPlace());
    out.client = client.get();
    return client;
  });
  EXPECT_NE(out.conn, nullptr);
  if (!out.conn) return out;
  out.session = &worker.clients().sessions().create(id, worker.loop().config().replay_size);
  out.client->bind_session(*out.session, false);
  out.conn->resume_reading();
  return out;
}

}  // namespace odin::testing
