// permessage-deflate (see deflate.hpp). Section numbers refer to RFC 7692; the DEFLATE format is
// RFC 1951.
#define ZLIB_CONST
#include "ws/deflate.hpp"

#include <zlib.h>

#include <algorithm>
#include <cassert>
#include <climits>
#include <cstring>
#include <new>
#include <stdexcept>

namespace odin::ws {

namespace {

// Grows `s` to hold `n` bytes without its capacity passing `cap` (n <= cap). std::string's own
// growth doubles (libstdc++'s reserve too), which for a bomb would allocate up to twice the limit.
void reserve_at_most(std::string& s, size_t n, size_t cap) {
  if (n <= s.capacity()) return;
  const size_t want = std::min(std::max(n, 2 * s.capacity()), cap);
  if (want >= 2 * s.capacity()) {
    s.reserve(want);
    return;
  }
  std::string bigger;  // from the small-string buffer, so reserve takes `want` as it is
  bigger.reserve(want);
  bigger.append(s);
  s.swap(bigger);
}

}  // namespace

size_t encode_stored_block(char* out, std::string_view bytes) {
  assert(bytes.size() <= kMaxStoredBlockBytes);
  const auto len = static_cast<uint16_t>(bytes.size());
  const auto nlen = static_cast<uint16_t>(~len);
  // RFC 1951 3.2.4: BFINAL and BTYPE are the byte's low 3 bits, the other 5 are padding up to the
  // byte boundary where LEN starts; all 0 here.
  out[0] = 0;
  out[1] = static_cast<char>(len & 0xFF);
  out[2] = static_cast<char>(len >> 8);
  out[3] = static_cast<char>(nlen & 0xFF);
  out[4] = static_cast<char>(nlen >> 8);
  if (!bytes.empty()) std::memcpy(out + kStoredBlockHeaderBytes, bytes.data(), bytes.size());
  return kStoredBlockHeaderBytes + bytes.size();
}

size_t encode_compressed_data_head(char* out, std::string_view prefix_json,
                                   size_t compressed_tail_size) {
  assert(prefix_json.size() <= kMaxCompressedPrefixBytes);
  const size_t payload = kStoredBlockHeaderBytes + prefix_json.size() + compressed_tail_size;
  size_t n = encode_frame_header(out, Opcode::kText, payload);
  out[0] = static_cast<char>(out[0] | 0x40);  // RSV1: "Per-Message Compressed" (6.1)
  // The stored block ends on a byte boundary and the tail's DEFLATE data starts on one (a fresh
  // stream), so the two concatenate into one valid stream.
  n += encode_stored_block(out + n, prefix_json);
  return n;
}

// ---------------------------------------------------------------------------------------------
// MessageDeflater

MessageDeflater::MessageDeflater(int level, int window_bits, int mem_level)
    : z_(std::make_unique<z_stream_s>()), level_(level), window_bits_(window_bits) {
  if (level < 1 || level > 9) throw std::invalid_argument("deflate level must be 1..9");
  if (window_bits < 9 || window_bits > 15)
    throw std::invalid_argument("deflate window bits must be 9..15");
  if (mem_level < 1 || mem_level > 9) throw std::invalid_argument("deflate memLevel must be 1..9");
  // Negative window bits: raw DEFLATE, no zlib header or checksum (7.2.1).
  const int rc =
      deflateInit2(z_.get(), level, Z_DEFLATED, -window_bits, mem_level, Z_DEFAULT_STRATEGY);
  if (rc == Z_MEM_ERROR) throw std::bad_alloc();
  if (rc != Z_OK) throw std::invalid_argument("deflateInit2 refused the parameters");
}

MessageDeflater::~MessageDeflater() {
  if (z_) deflateEnd(z_.get());
}

MessageDeflater::MessageDeflater(MessageDeflater&&) noexcept = default;

MessageDeflater& MessageDeflater::operator=(MessageDeflater&& other) noexcept {
  if (this != &other) {
    if (z_) deflateEnd(z_.get());
    z_ = std::move(other.z_);
    level_ = other.level_;
    window_bits_ = other.window_bits_;
  }
  return *this;
}

size_t MessageDeflater::worth_it_limit(size_t input_size) {
  const size_t keep = input_size - input_size / 20;  // saves at least 5%
  return keep > kStoredBlockHeaderBytes ? keep - kStoredBlockHeaderBytes : 0;
}

bool MessageDeflater::fits_client_window(size_t message_bytes, int client_window_bits) const {
  // Distances stay below the message's length, and below 2^window_bits_ - 262 (zlib's MAX_DIST).
  if (client_window_bits >= window_bits_) return true;
  if (client_window_bits < 8) return false;
  return message_bytes <= (size_t{1} << client_window_bits);
}

bool MessageDeflater::compress(std::string_view in, std::string& out) {
  const size_t limit = worth_it_limit(in.size());
  if (limit == 0) {
    out.clear();
    return false;
  }
  return run(in, out, limit);
}

bool MessageDeflater::compress_always(std::string_view in, std::string& out) {
  return run(in, out, SIZE_MAX);
}

bool MessageDeflater::run(std::string_view in, std::string& out, size_t max_compressed) {
  out.clear();
  if (!z_ || in.size() > UINT_MAX) return false;  // uInt counts; no message is that large
  // Every message from scratch: what it compresses to depends on nothing before it.
  if (deflateReset(z_.get()) != Z_OK) return false;
  z_->next_in = reinterpret_cast<const Bytef*>(in.data());
  z_->avail_in = static_cast<uInt>(in.size());
  // The output room: the compressed bytes, the 4-byte trailer, and one more so that a full
  // buffer always means "more than max_compressed" (zlib returns with room left only when done).
  const size_t bound = deflateBound(z_.get(), static_cast<uLong>(in.size())) + 16;  // + the flush
  const size_t most = max_compressed == SIZE_MAX ? SIZE_MAX : max_compressed + 5;
  size_t room = std::min(bound, most);
  size_t produced = 0;
  for (;;) {
    if (room > UINT_MAX) return out.clear(), false;
    out.resize(room);
    z_->next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    z_->avail_out = static_cast<uInt>(room - produced);
    const int rc = deflate(z_.get(), Z_SYNC_FLUSH);
    produced = room - z_->avail_out;
    if (rc != Z_OK && rc != Z_BUF_ERROR) return out.clear(), false;
    if (z_->avail_out != 0) {  // the flush finished, so all input was taken
      if (z_->avail_in != 0) return out.clear(), false;
      break;
    }
    if (room >= most) return out.clear(), false;
    room = most - room < room ? most : 2 * room;  // deflateBound was wrong: never in practice
  }
  // 7.2.1: a sync flush ends with an empty stored block, whose LEN/NLEN the client adds back.
  if (produced < 4 || std::memcmp(out.data() + produced - 4, kDeflateTrailer, 4) != 0)
    return out.clear(), false;
  out.resize(produced - 4);
  return out.size() <= max_compressed;
}

// ---------------------------------------------------------------------------------------------
// MessageInflater

MessageInflater::MessageInflater() : z_(std::make_unique<z_stream_s>()) {
  const int rc = inflateInit2(z_.get(), -15);  // raw DEFLATE, the largest window a client may use
  if (rc == Z_MEM_ERROR) throw std::bad_alloc();
  if (rc != Z_OK) throw std::runtime_error("inflateInit2 failed");
}

MessageInflater::~MessageInflater() {
  if (z_) inflateEnd(z_.get());
}

MessageInflater::MessageInflater(MessageInflater&&) noexcept = default;

MessageInflater& MessageInflater::operator=(MessageInflater&& other) noexcept {
  if (this != &other) {
    if (z_) inflateEnd(z_.get());
    z_ = std::move(other.z_);
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

InflateResult MessageInflater::inflate(std::string_view compressed, size_t max_output) {
  return inflate(compressed, max_output, buffer_);
}

InflateResult MessageInflater::inflate(std::string_view compressed, size_t max_output,
                                       std::string& out) {
  out.clear();
  // No compressor makes an empty payload (a sync flush alone gives 00), but nothing can only
  // inflate to nothing; zlib would see an unfinished stored block.
  if (compressed.empty()) return InflateResult::kOk;
  if (!z_ || inflateReset(z_.get()) != Z_OK) return InflateResult::kBad;
  z_->avail_in = 0;  // the reset leaves what a stopped message did not use
  // One byte past the limit is enough to know the message is too big.
  const size_t cap = max_output == SIZE_MAX ? SIZE_MAX : max_output + 1;
  const char* next = compressed.data();
  size_t left = compressed.size();  // not yet handed to zlib
  bool trailer_fed = false;
  const auto fail = [&out](InflateResult r) {
    out.clear();
    return r;
  };
  for (;;) {
    if (z_->avail_in == 0 && !trailer_fed) {
      if (left > 0) {
        const size_t n = std::min<size_t>(left, UINT_MAX);
        z_->next_in = reinterpret_cast<const Bytef*>(next);
        z_->avail_in = static_cast<uInt>(n);
        next += n;
        left -= n;
      } else {
        z_->next_in = reinterpret_cast<const Bytef*>(kDeflateTrailer);
        z_->avail_in = sizeof(kDeflateTrailer);
        trailer_fed = true;
      }
    }
    const size_t at = out.size();
    const size_t step = std::min(kChunk, cap - at);
    reserve_at_most(out, at + step, cap);
    out.resize(at + step);
    z_->next_out = reinterpret_cast<Bytef*>(out.data() + at);
    z_->avail_out = static_cast<uInt>(step);
    const int rc = ::inflate(z_.get(), Z_SYNC_FLUSH);
    out.resize(at + step - z_->avail_out);
    if (out.size() > max_output) return fail(InflateResult::kTooBig);
    // A final block (BFINAL=1) ends the message (7.2.3.4); what follows it is not DEFLATE data
    // any more (7.2.3.4 puts an empty block's header there) and is not read.
    if (rc == Z_STREAM_END) return InflateResult::kOk;
    if (rc != Z_OK && rc != Z_BUF_ERROR) return fail(InflateResult::kBad);
    if (z_->avail_out == 0) continue;  // output may be waiting
    // Room left means zlib took all the input it had (anything else would loop forever).
    if (z_->avail_in != 0) return fail(InflateResult::kBad);
    if (!trailer_fed) {
      // A payload may end on a block boundary without the sync flush's empty block (7.2.3.3's
      // single stored block): whole already, and the trailer would only start an unfinished
      // block.
      if (left == 0 && (z_->data_type & 128) != 0) return InflateResult::kOk;
      continue;
    }
    // All in, all out. A message that was cut short leaves zlib inside a block; a whole one
    // ends at a block boundary (128 in data_type: zlib waits for the next block's header).
    return (z_->data_type & 128) != 0 ? InflateResult::kOk : fail(InflateResult::kBad);
  }
}

}  // namespace odin::ws
