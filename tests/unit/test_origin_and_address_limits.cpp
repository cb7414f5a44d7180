// Unit tests of the upgrade guards that need no network: origin matching (WS_ALLOWED_ORIGINS)
// and the per-address connection count (WS_MAX_CONNECTIONS_PER_IP).
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "guard/address_limits.hpp"
#include "guard/origin_policy.hpp"

namespace odin {
namespace {

TEST(OriginPolicy, EmptyListAllowsEveryOrigin) {
  EXPECT_TRUE(guard::origin_allowed({}, "https://anything.example"));
}

TEST(OriginPolicy, ExactAndWildcardEntries) {
  const std::vector<std::string> allowed = {"https://app.example.com", "http://localhost:3000",
                                            "https://*.example.org"};
  for (const char* ok :
       {"https://app.example.com", "HTTPS://App.Example.COM", "http://localhost:3000",
        "https://a.example.org", "https://a.b.example.org"}) {
    EXPECT_TRUE(guard::origin_allowed(allowed, ok)) << ok;
  }
  for (const char* bad :
       {"https://app.example.com:443", "http://app.example.com", "https://app.example.co",
        "http://localhost:3001", "https://example.org", "https://.example.org",
        "http://a.example.org", "https://a.example.org:8443", "https://example.org.evil",
        "https://evil/x.example.org", "null", ""}) {
    EXPECT_FALSE(guard::origin_allowed(allowed, bad)) << bad;
  }
  EXPECT_TRUE(guard::origin_allowed(std::vector<std::string>{"*"}, "null"));
}

TEST(AddressLimits, CountsPerAddressAndReleasesOnDestruction) {
  guard::AddressLimits limits(2);
  guard::AddressLimits::Slot a, b, c, other;
  EXPECT_TRUE(limits.acquire(0x7f000007, a));
  EXPECT_TRUE(limits.acquire(0x7f000007, b));
  EXPECT_FALSE(limits.acquire(0x7f000007, c));
  EXPECT_TRUE(limits.acquire(0x7f000001, other));
  EXPECT_EQ(limits.count(0x7f000007), 2u);
  {
    guard::AddressLimits::Slot moved = std::move(a);  // a slot travels with its connection
    EXPECT_EQ(limits.count(0x7f000007), 2u);
  }
  EXPECT_EQ(limits.count(0x7f000007), 1u);
  EXPECT_TRUE(limits.acquire(0x7f000007, c));
  b.reset();
  c.reset();
  EXPECT_EQ(limits.count(0x7f000007), 0u);
}

TEST(AddressLimits, ZeroMeansNoLimitAndNoCounting) {
  guard::AddressLimits limits(0);
  std::vector<guard::AddressLimits::Slot> slots(1000);
  for (auto& slot : slots)
    EXPECT_TRUE(limits.acquire(1, slot));
  EXPECT_EQ(limits.count(1), 0u);
}

// WS_MAX_SOCKETS: every socket counts, whatever its address (behind a balancer they share one),
// and a slot refused for its address gives its process-wide place back.
TEST(AddressLimits, ProcessWideCapCountsEverySocketAndReleases) {
  guard::AddressLimits limits(0, 3);
  std::vector<guard::AddressLimits::Slot> slots(4);
  EXPECT_EQ(limits.admit(1, slots[0]), guard::AddressLimits::Verdict::kAdmitted);
  EXPECT_EQ(limits.admit(2, slots[1]), guard::AddressLimits::Verdict::kAdmitted);
  EXPECT_EQ(limits.admit(3, slots[2]), guard::AddressLimits::Verdict::kAdmitted);
  EXPECT_EQ(limits.admit(4, slots[3]), guard::AddressLimits::Verdict::kProcessFull);
  EXPECT_EQ(limits.total(), 3u);
  {
    guard::AddressLimits::Slot moved = std::move(slots[0]);  // travels with a migrating connection
    EXPECT_EQ(limits.total(), 3u);
  }
  EXPECT_EQ(limits.total(), 2u);
  EXPECT_EQ(limits.admit(4, slots[3]), guard::AddressLimits::Verdict::kAdmitted);

  guard::AddressLimits both(1, 2);
  guard::AddressLimits::Slot a, b, c;
  EXPECT_EQ(both.admit(7, a), guard::AddressLimits::Verdict::kAdmitted);
  EXPECT_EQ(both.admit(7, b), guard::AddressLimits::Verdict::kAddressFull);
  EXPECT_EQ(both.total(), 1u);
  EXPECT_EQ(both.admit(8, b), guard::AddressLimits::Verdict::kAdmitted);
  EXPECT_EQ(both.admit(9, c), guard::AddressLimits::Verdict::kProcessFull);
  a.reset();
  EXPECT_EQ(both.total(), 1u);
  EXPECT_EQ(both.count(7), 0u);
}

// Race test (run under TSan by scripts/test.sh): every event-loop thread admits and releases at
// once. Whatever the interleaving, no more sockets are held than WS_MAX_SOCKETS, none above the
// per-address cap, and every place comes back.
TEST(AddressLimits, ConcurrentAdmitsAndReleasesKeepBothCaps) {
  constexpr uint32_t kPerAddress = 3;
  constexpr uint32_t kTotal = 8;  // below 4 addresses x 3: both refusals happen
  constexpr int kThreads = 4;
  guard::AddressLimits limits(kPerAddress, kTotal);
  std::atomic<int> held{0};
  std::atomic<int> held_peak{0};
  std::atomic<int> process_full{0};
  std::atomic<int> address_full{0};
  std::atomic<bool> over_address_cap{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 random(static_cast<uint32_t>(t) + 1);
      std::deque<guard::AddressLimits::Slot> mine;
      for (int i = 0; i < 20'000; ++i) {
        const uint32_t address = 100 + random() % 4;
        if (random() % 2 == 0 || mine.empty()) {
          guard::AddressLimits::Slot slot;
          switch (limits.admit(address, slot)) {
            case guard::AddressLimits::Verdict::kAdmitted: {
              const int now = held.fetch_add(1) + 1;
              int peak = held_peak.load();
              while (now > peak && !held_peak.compare_exchange_weak(peak, now)) {
              }
              if (limits.count(address) > kPerAddress) over_address_cap = true;
              mine.push_back(std::move(slot));
              break;
            }
            case guard::AddressLimits::Verdict::kProcessFull:
              process_full.fetch_add(1);
              break;
            case guard::AddressLimits::Verdict::kAddressFull:
              address_full.fetch_add(1);
              break;
          }
        } else {
          held.fetch_sub(1);  // before the place is given back: `held` never counts too few
          mine.pop_front();
        }
      }
      held.fetch_sub(static_cast<int>(mine.size()));
      mine.clear();
    });
  }
  for (std::thread& thread : threads)
    thread.join();
  EXPECT_LE(held_peak.load(), static_cast<int>(kTotal));
  EXPECT_FALSE(over_address_cap.load());
  EXPECT_GT(process_full.load(), 0);
  EXPECT_GT(address_full.load(), 0);
  EXPECT_EQ(limits.total(), 0u);
  for (uint32_t address = 100; address < 104; ++address)
    EXPECT_EQ(limits.count(address), 0u) << address;
}

}  // namespace
}  // namespace odin
