// TLS for client connections (WS_TLS_CERT / WS_TLS_KEY), with OpenSSL: the server context (one
// per certificate load; SIGHUP loads a new one while connections keep theirs), a connection's
// TLS state, and the thread's ciphertext sink.
//
// Why a memory BIO for output: the batched writer encrypts a whole turn's frames for a connection
// and then writes the ciphertext with the same write/backlog code as plain connections, so a
// socket that refuses bytes never leaves OpenSSL holding a half-sent record (which would pin the
// plaintext and forbid moving it). The sink is one BIO per thread, not per connection, because
// it is emptied after every use: idle TLS connections hold no output buffers. Input reads the
// socket directly (a socket BIO): with SSL_MODE_RELEASE_BUFFERS an idle connection holds no
// read buffer either.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>

namespace odin::net {

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};

// A server context: certificate chain and key, loaded and checked together.
class TlsContext {
 public:
  TlsContext() = default;  // empty; use load()
  // Loads a PEM certificate chain and its private key; the error names the file that failed.
  static std::variant<std::shared_ptr<const TlsContext>, std::string> load(
      const std::string& cert_path, const std::string& key_path);
  SSL_CTX* get() const { return ctx_.get(); }
  // The certificate's subject and expiry, for the log line at load time.
  const std::string& description() const { return description_; }

 private:
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx_;
  std::string description_;
};

struct BioMethodFree {
  void operator()(BIO_METHOD* method) const { BIO_meth_free(method); }
};

// Where a thread's TLS output goes before it is written to a socket: a BIO that appends to one
// string. (OpenSSL's memory BIO would do, but its reset clears its whole capacity every time,
// which per connection per turn is a memset of the largest burst ever written.)
class TlsSink {
 public:
  TlsSink();
  TlsSink(const TlsSink&) = delete;  // the BIO points at buffer_
  TlsSink& operator=(const TlsSink&) = delete;
  BIO* bio() const { return bio_.get(); }
  std::string_view pending() const { return buffer_; }
  void clear() { buffer_.clear(); }

 private:
  std::string buffer_;
  std::unique_ptr<BIO_METHOD, BioMethodFree> method_;
  std::unique_ptr<BIO, BioFree> bio_;
};

// One connection's TLS state (server side). Every call takes the current thread's sink, because a
// connection can move to another thread (resume) and must then write into that thread's sink.
class TlsStream {
 public:
  // Null when OpenSSL cannot make the connection state (out of memory).
  static std::unique_ptr<TlsStream> accept(const TlsContext& context, int fd);

  enum class ReadStatus : uint8_t { kData, kWouldBlock, kClosed, kFailed };
  struct ReadResult {
    ReadStatus status;
    size_t bytes = 0;
  };
  // Decrypts into `out` (runs the handshake first); handshake and alert records produced on the
  // way are left in `sink` for the caller to send.
  ReadResult read(std::span<char> out, TlsSink& sink);
  // Encrypts `plain` into `sink`; false after a fatal TLS error.
  bool write(std::string_view plain, TlsSink& sink);
  // Queues close_notify into `sink`.
  void shutdown(TlsSink& sink);
  bool handshake_done() const;
  // Whether decrypted bytes are buffered inside OpenSSL (the socket will not signal them).
  bool has_buffered_input() const;
  // The reason of the last failure, for a debug log line.
  std::string last_error() const;

  explicit TlsStream(SSL* ssl) : ssl_(ssl) {}

 private:
  void bind_sink(TlsSink& sink);
  std::unique_ptr<SSL, SslFree> ssl_;
  unsigned long last_error_ = 0;  // OpenSSL's error code; text only when someone asks
};

}  // namespace odin::net
