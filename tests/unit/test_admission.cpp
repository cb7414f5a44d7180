// Unit tests of WebSocket admission: the cap, the drain, memory admission, and the ticket that
// gives a place back wherever it goes (moved, released, destroyed), including from many threads
// at once (a race test: run under TSan by scripts/test.sh).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <variant>
#include <vector>

#include "guard/admission.hpp"
#include "guard/resource_monitor.hpp"

namespace odin {
namespace {

TEST(Admission, TicketsCountUntilTheyGoWhereverTheyGo) {
  ops::Config config;
  config.max_connections = 2;
  guard::ResourceMonitor resources;
  guard::Admission admission(config, resources);
  auto first = admission.admit();
  auto second = admission.admit();
  ASSERT_TRUE(std::holds_alternative<guard::Admission::Ticket>(first));
  ASSERT_TRUE(std::holds_alternative<guard::Admission::Ticket>(second));
  EXPECT_EQ(admission.admitted(), 2u);
  auto third = admission.admit();
  ASSERT_TRUE(std::holds_alternative<ops::RejectReason>(third));
  EXPECT_EQ(std::get<ops::RejectReason>(third), ops::RejectReason::kAtCapacity);
  EXPECT_EQ(admission.admitted(), 2u);  // a refusal holds no place

  // Moved along (to another thread, say): still one place, given back once.
  guard::Admission::Ticket moved = std::get<guard::Admission::Ticket>(std::move(first));
  EXPECT_EQ(admission.admitted(), 2u);
  moved.release();
  moved.release();
  EXPECT_FALSE(moved);
  EXPECT_EQ(admission.admitted(), 1u);
  { guard::Admission::Ticket dies = std::get<guard::Admission::Ticket>(std::move(second)); }
  EXPECT_EQ(admission.admitted(), 0u);
  // Assigned over: the old place goes back.
  guard::Admission::Ticket a = std::get<guard::Admission::Ticket>(admission.admit());
  a = std::get<guard::Admission::Ticket>(admission.admit());
  EXPECT_EQ(admission.admitted(), 1u);
}

TEST(Admission, DrainAndMemoryRefuse) {
  ops::Config config;
  config.memory_reject_threshold = 50;
  config.cpu_reject_threshold = 1e9;  // this test is about memory, whatever the CPU does
  guard::ResourceMonitor resources;
  guard::Admission admission(config, resources);
  EXPECT_TRUE(
      std::holds_alternative<guard::Admission::Ticket>(admission.admit()));  // no limit known
  resources.configure(0, 1);  // a 1-byte memory limit: the process is far over it
  EXPECT_EQ(std::get<ops::RejectReason>(admission.admit()), ops::RejectReason::kMemory);
  admission.begin_drain();
  EXPECT_EQ(std::get<ops::RejectReason>(admission.admit()), ops::RejectReason::kDraining);
  EXPECT_EQ(admission.admitted(), 0u);
}

TEST(Admission, ConcurrentAdmitsAndReleasesNeverPassTheCap) {
  ops::Config config;
  config.max_connections = 100;
  guard::ResourceMonitor resources;
  guard::Admission admission(config, resources);
  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  std::atomic<uint32_t> most{0};
  std::atomic<uint64_t> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::vector<guard::Admission::Ticket> held;
      for (int i = 0; i < kRounds; ++i) {
        auto got = admission.admit();
        if (auto* ticket = std::get_if<guard::Admission::Ticket>(&got)) {
          held.push_back(std::move(*ticket));
          admitted.fetch_add(1);
        }
        const uint32_t now = admission.admitted();
        uint32_t seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        if (held.size() > 40 || (i % 7 == 0 && !held.empty())) held.clear();
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_LE(most.load(), 100u);
  EXPECT_GT(admitted.load(), 1000u);
  EXPECT_EQ(admission.admitted(), 0u);  // every ticket went back
}

}  // namespace
}  // namespace odin
