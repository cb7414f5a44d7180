// TLS with OpenSSL (see tls.hpp).
#include "net/tls.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <climits>

#include <fmt/format.h>

namespace odin::net {

namespace {

std::string openssl_error_text(unsigned long code) {
  if (code == 0) return "unknown error";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

// The oldest error in the thread's queue (the root cause), then the queue is emptied so it cannot
// be blamed on the next connection.
unsigned long take_error() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  return code;
}

std::string describe_certificate(SSL_CTX* ctx) {
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (!cert) return "no certificate";
  char subject[256] = {};
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
  std::string expires = "?";
  if (BIO* mem = BIO_new(BIO_s_mem())) {
    if (ASN1_TIME_print(mem, X509_get0_notAfter(cert))) {
      char* data = nullptr;
      const long n = BIO_get_mem_data(mem, &data);
      if (n > 0) expires.assign(data, static_cast<size_t>(n));
    }
    BIO_free(mem);
  }
  return fmt::format("{} (expires {})", subject, expires);
}

}  // namespace

std::variant<std::shared_ptr<const TlsContext>, std::string> TlsContext::load(
    const std::string& cert_path, const std::string& key_path) {
  ERR_clear_error();
  auto context = std::make_shared<TlsContext>();
  context->ctx_.reset(SSL_CTX_new(TLS_server_method()));
  SSL_CTX* ctx = context->ctx_.get();
  if (!ctx) return "cannot create a TLS context: " + openssl_error_text(take_error());
  // TLS 1.2 is still what some HTTP clients and load balancers speak; nothing older.
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // TLS 1.2 suites: forward secrecy (ECDHE) and AEAD only, as in Mozilla's "intermediate"
  // profile without DHE (a slow handshake a client can make us compute). Static-RSA suites let
  // a stolen key decrypt recorded traffic, and CBC-SHA1 is the Lucky13 / padding-oracle family.
  // TLS 1.3 suites are all ECDHE + AEAD already.
  static constexpr char kTls12Ciphers[] =
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) {
    return "cannot set the TLS 1.2 cipher suites: " + openssl_error_text(take_error());
  }
  // No renegotiation (a client-driven CPU sink), no compression (CRIME); a peer that drops TCP
  // without close_notify is an ordinary EOF, as it is for plain WebSocket.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Idle connections give their 16 KB+ record buffers back; writes may come from any buffer.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_ENABLE_PARTIAL_WRITE);
  // One ticket (not OpenSSL's default two): enough for a reconnecting client to skip the
  // certificate signature, half the bytes and work per handshake.
  SSL_CTX_set_num_tickets(ctx, 1);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_path.c_str()) != 1) {
    return fmt::format("WS_TLS_CERT: cannot load the certificate chain from '{}': {}", cert_path,
                       openssl_error_text(take_error()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_path.c_str(), SSL_FILETYPE_PEM) != 1) {
    return fmt::format("WS_TLS_KEY: cannot load the private key from '{}': {}", key_path,
                       openssl_error_text(take_error()));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return fmt::format("WS_TLS_KEY: the key in '{}' does not match the certificate in '{}'",
                       key_path, cert_path);
  }
  context->description_ = describe_certificate(ctx);
  return std::shared_ptr<const TlsContext>(std::move(context));
}

namespace {

int sink_write(BIO* bio, const char* data, int length) {
  static_cast<std::string*>(BIO_get_data(bio))->append(data, static_cast<size_t>(length));
  return length;
}

long sink_ctrl(BIO*, int command, long, void*) {
  return command == BIO_CTRL_FLUSH ? 1 : 0;  // nothing is buffered below the string
}

int sink_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

}  // namespace

TlsSink::TlsSink() : method_(BIO_meth_new(BIO_TYPE_SOURCE_SINK, "odin-tls-sink")) {
  if (!method_ || !BIO_meth_set_write(method_.get(), sink_write) ||
      !BIO_meth_set_ctrl(method_.get(), sink_ctrl) ||
      !BIO_meth_set_create(method_.get(), sink_create)) {
    return;  // out of memory at start-up: bio() is null and TLS connections fail
  }
  bio_.reset(BIO_new(method_.get()));
  if (bio_) BIO_set_data(bio_.get(), &buffer_);
}

std::unique_ptr<TlsStream> TlsStream::accept(const TlsContext& context, int fd) {
  SSL* ssl = SSL_new(context.get());  // holds its own reference to the context
  if (!ssl) return nullptr;
  auto stream = std::make_unique<TlsStream>(ssl);
  BIO* input = BIO_new_socket(fd, BIO_NOCLOSE);  // the socket stays ours to close
  if (!input) return nullptr;
  SSL_set0_rbio(ssl, input);
  SSL_set_accept_state(ssl);
  return stream;
}

void TlsStream::bind_sink(TlsSink& sink) {
  if (!sink.bio() || SSL_get_wbio(ssl_.get()) == sink.bio()) return;
  BIO_up_ref(sink.bio());  // SSL_set0_wbio takes one reference and drops the previous BIO's
  SSL_set0_wbio(ssl_.get(), sink.bio());
}

TlsStream::ReadResult TlsStream::read(std::span<char> out, TlsSink& sink) {
  bind_sink(sink);
  size_t n = 0;
  const int ok = SSL_read_ex(ssl_.get(), out.data(), out.size(), &n);
  if (ok == 1) return {ReadStatus::kData, n};
  const int error = SSL_get_error(ssl_.get(), ok);
  switch (error) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:  // never from a memory sink; treated as "later"
      ERR_clear_error();
      return {ReadStatus::kWouldBlock};
    case SSL_ERROR_ZERO_RETURN:  // close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF)
      ERR_clear_error();
      return {ReadStatus::kClosed};
    case SSL_ERROR_SYSCALL:
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        ERR_clear_error();
        return {ReadStatus::kWouldBlock};
      }
      last_error_ = take_error();
      return {ReadStatus::kFailed};
    default:
      last_error_ = take_error();
      return {ReadStatus::kFailed};
  }
}

bool TlsStream::write(std::string_view plain, TlsSink& sink) {
  bind_sink(sink);
  while (!plain.empty()) {
    size_t written = 0;
    const size_t chunk = std::min<size_t>(plain.size(), INT_MAX);
    if (SSL_write_ex(ssl_.get(), plain.data(), chunk, &written) != 1 || written == 0) {
      last_error_ = take_error();
      return false;
    }
    plain.remove_prefix(written);
  }
  return true;
}

void TlsStream::shutdown(TlsSink& sink) {
  bind_sink(sink);
  if (SSL_is_init_finished(ssl_.get())) (void)SSL_shutdown(ssl_.get());
  ERR_clear_error();
}

bool TlsStream::handshake_done() const {
  return SSL_is_init_finished(ssl_.get()) == 1;
}

bool TlsStream::has_buffered_input() const {
  return SSL_has_pending(ssl_.get()) == 1;
}

std::string TlsStream::last_error() const {
  return openssl_error_text(last_error_);
}

}  // namespace odin::net
