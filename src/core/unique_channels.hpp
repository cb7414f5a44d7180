// Reading a client's list of channel names (`?channels=`, a request's `channels`) without
// letting its length cost more than linear time: names are kept in first-seen order without
// duplicates, and reading stops one name past the cap, so a hostile list of thousands of names
// costs no more than the cap allows (docs/security.md, "Channel lists").
#pragma once

#include <cstddef>
#include <limits>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace odin::core {

// No cap: every name of the list is kept.
inline constexpr size_t kNoChannelCap = std::numeric_limits<size_t>::max();

// Appends distinct names to `out` (which it does not own and which starts empty), each name
// looked up once in expected constant time: a linear scan while the list is short (the common
// case, no allocation), a hash set once it outgrows kScanLimit. Holds views: the names must
// outlive it and `out`. One thread; not shared.
class UniqueChannels {
 public:
  UniqueChannels(std::vector<std::string_view>& out, size_t cap) : out_(out), cap_(cap) {}

  // Adds `name` unless already there. Returns false once `out` holds cap + 1 names: the list is
  // over the cap, which the caller reports by checking out.size() > cap, and the rest of the list
  // need not be read.
  bool add(std::string_view name) {
    if (over_cap()) return false;
    if (out_.size() < kScanLimit) {
      for (std::string_view seen : out_) {
        if (seen == name) return true;
      }
    } else {
      if (seen_.empty()) seen_.insert(out_.begin(), out_.end());
      if (!seen_.insert(name).second) return true;
    }
    out_.push_back(name);
    return !over_cap();
  }

  bool over_cap() const { return out_.size() > cap_; }

 private:
  // Up to this many names a scan beats hashing and allocating; past it the scan would make the
  // whole list quadratic.
  static constexpr size_t kScanLimit = 16;

  std::vector<std::string_view>& out_;
  size_t cap_;
  std::unordered_set<std::string_view> seen_;  // filled when out_ reaches kScanLimit names
};

}  // namespace odin::core
