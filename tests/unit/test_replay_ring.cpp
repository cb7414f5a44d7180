// Unit tests of ReplayRing: ordering, eviction, gaps, range queries, storage and the lifetime of
// the handles it holds (each one released exactly once, none leaked).
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "core/replay_ring.hpp"

namespace odin {
namespace {

// A move-only handle that records its lifetime: which ids were released, and how often.
class Handle {
 public:
  static inline std::map<int, int> releases;  // id -> times released
  static inline int live = 0;
  static inline int array_allocations = 0;  // the ring's storage: new Handle[n]

  static void reset_counters() {
    releases.clear();
    live = 0;
    array_allocations = 0;
  }

  static void* operator new[](std::size_t bytes) {
    ++array_allocations;
    return ::operator new[](bytes);
  }
  static void operator delete[](void* p) noexcept { ::operator delete[](p); }

  Handle() = default;
  explicit Handle(int id) : id_(id) { ++live; }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, -1)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      release();
      id_ = std::exchange(other.id_, -1);
    }
    return *this;
  }
  ~Handle() { release(); }

  int id() const { return id_; }

 private:
  void release() {
    if (id_ < 0) return;
    ++releases[id_];
    --live;
    id_ = -1;
  }
  int id_ = -1;
};

class ReplayRingTest : public ::testing::Test {
 protected:
  void SetUp() override { Handle::reset_counters(); }
  void TearDown() override {
    EXPECT_EQ(Handle::live, 0) << "a handle leaked";
    for (const auto& [id, times] : Handle::releases)
      EXPECT_EQ(times, 1) << "handle " << id << " released " << times << " times";
  }
};

struct Visit {
  uint64_t seq;
  int id;
  const Handle* address;
  bool operator==(const Visit& o) const { return seq == o.seq && id == o.id; }
};

std::vector<Visit> visit_all(const core::ReplayRing<Handle>& ring, uint64_t from, uint64_t to,
                             uint32_t* returned = nullptr) {
  std::vector<Visit> out;
  const uint32_t n = ring.for_range(from, to, [&](uint64_t seq, const Handle& h) {
    out.push_back({seq, h.id(), &h});
  });
  if (returned) *returned = n;
  EXPECT_EQ(n, out.size());
  return out;
}

std::vector<uint64_t> seqs_of(const std::vector<Visit>& visits) {
  std::vector<uint64_t> out;
  for (const Visit& v : visits)
    out.push_back(v.seq);
  return out;
}

TEST_F(ReplayRingTest, IsSmall) {
  EXPECT_LE(sizeof(core::ReplayRing<void*>), 32u);
  EXPECT_LE(sizeof(core::ReplayRing<Handle>), 32u);
}

TEST_F(ReplayRingTest, StartsEmptyWithoutStorage) {
  core::ReplayRing<Handle> ring(100);
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.size(), 0u);
  EXPECT_EQ(ring.capacity(), 100u);
  EXPECT_EQ(Handle::array_allocations, 0) << "storage allocated before the first push";
  EXPECT_EQ(ring.for_range(0, UINT64_MAX, [](uint64_t, const Handle&) { ADD_FAILURE(); }), 0u);
}

TEST_F(ReplayRingTest, AllocatesExactlyCapacityOnceAtFirstPush) {
  core::ReplayRing<Handle> ring(8);
  ring.push(1, Handle(1));
  EXPECT_EQ(Handle::array_allocations, 1);
  const Handle* base = visit_all(ring, 1, 1).at(0).address;
  for (int seq = 2; seq <= 100; ++seq)
    ring.push(static_cast<uint64_t>(seq), Handle(seq));
  ring.push(500, Handle(500));  // a gap starts over in the same storage
  for (int seq = 501; seq <= 530; ++seq)
    ring.push(static_cast<uint64_t>(seq), Handle(seq));
  EXPECT_EQ(Handle::array_allocations, 1) << "storage was reallocated";
  for (const Visit& v : visit_all(ring, 0, UINT64_MAX)) {
    EXPECT_GE(v.address, base);
    EXPECT_LT(v.address, base + 8);
  }
}

TEST_F(ReplayRingTest, KeepsTheLastCapacityInOrderAndReleasesEvictedOnce) {
  core::ReplayRing<Handle> ring(5);
  for (int seq = 1; seq <= 5; ++seq) {
    ring.push(static_cast<uint64_t>(seq), Handle(seq));
    EXPECT_EQ(ring.size(), static_cast<uint32_t>(seq));
    EXPECT_EQ(ring.first_seq(), 1u);
    EXPECT_EQ(ring.last_seq(), static_cast<uint64_t>(seq));
  }
  EXPECT_TRUE(Handle::releases.empty());
  for (int seq = 6; seq <= 23; ++seq) {
    ring.push(static_cast<uint64_t>(seq), Handle(seq));
    // The oldest is released by the push that evicts it, not later.
    EXPECT_EQ(Handle::releases.count(seq - 5), 1u) << seq;
    EXPECT_EQ(Handle::live, 5);
    EXPECT_EQ(ring.size(), 5u);
    EXPECT_EQ(ring.first_seq(), static_cast<uint64_t>(seq - 4));
    EXPECT_EQ(ring.last_seq(), static_cast<uint64_t>(seq));
  }
  const auto all = visit_all(ring, 1, 100);
  EXPECT_EQ(seqs_of(all), (std::vector<uint64_t>{19, 20, 21, 22, 23}));
  for (const Visit& v : all)
    EXPECT_EQ(static_cast<uint64_t>(v.id), v.seq);
}

TEST_F(ReplayRingTest, OldestNewestAndPopOldestAcrossTheWrap) {
  core::ReplayRing<Handle> ring(4);
  for (int seq = 1; seq <= 6; ++seq)  // wrapped: holds 3..6
    ring.push(static_cast<uint64_t>(seq), Handle(seq));
  EXPECT_EQ(ring.oldest().id(), 3);
  EXPECT_EQ(ring.newest().id(), 6);
  ring.pop_oldest();  // released at once, not at the next push
  EXPECT_EQ(Handle::releases.count(3), 1u);
  EXPECT_EQ(Handle::live, 3);
  EXPECT_EQ(ring.size(), 3u);
  EXPECT_EQ(ring.first_seq(), 4u);
  EXPECT_EQ(ring.oldest().id(), 4);
  ring.pop_oldest();
  ring.pop_oldest();
  EXPECT_EQ(ring.oldest().id(), 6);
  EXPECT_EQ(ring.newest().id(), 6);
  // Pushing on after pops keeps a contiguous run, and fills up to capacity again.
  for (int seq = 7; seq <= 10; ++seq)
    ring.push(static_cast<uint64_t>(seq), Handle(seq));
  EXPECT_EQ(seqs_of(visit_all(ring, 1, 100)), (std::vector<uint64_t>{7, 8, 9, 10}));
  EXPECT_EQ(ring.oldest().id(), 7);
  EXPECT_EQ(ring.newest().id(), 10);
  ring.pop_oldest();
  ring.pop_oldest();
  ring.pop_oldest();
  ring.pop_oldest();
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(Handle::live, 0);
}

TEST_F(ReplayRingTest, ForRangeClipsToWhatIsHeld) {
  core::ReplayRing<Handle> ring(5);
  for (int seq = 1; seq <= 12; ++seq)  // holds 8..12, stored across the wrap point
    ring.push(static_cast<uint64_t>(seq), Handle(seq));
  uint32_t n = 0;
  EXPECT_EQ(seqs_of(visit_all(ring, 9, 10, &n)), (std::vector<uint64_t>{9, 10}));
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(seqs_of(visit_all(ring, 0, 8)), (std::vector<uint64_t>{8}));
  EXPECT_EQ(seqs_of(visit_all(ring, 12, UINT64_MAX)), (std::vector<uint64_t>{12}));
  EXPECT_EQ(seqs_of(visit_all(ring, 11, 11)), (std::vector<uint64_t>{11}));
  EXPECT_EQ(seqs_of(visit_all(ring, 0, UINT64_MAX)), (std::vector<uint64_t>{8, 9, 10, 11, 12}));
  EXPECT_TRUE(visit_all(ring, 13, 20).empty());
  EXPECT_TRUE(visit_all(ring, 1, 7).empty());
  EXPECT_TRUE(visit_all(ring, 11, 9).empty()) << "from > to";
  EXPECT_TRUE(visit_all(ring, UINT64_MAX, 0).empty());
  // Every (from, to) pair around the held range against the obvious answer.
  for (uint64_t from = 5; from <= 15; ++from) {
    for (uint64_t to = 5; to <= 15; ++to) {
      std::vector<uint64_t> want;
      for (uint64_t s = std::max<uint64_t>(from, 8); s <= std::min<uint64_t>(to, 12); ++s)
        want.push_back(s);
      EXPECT_EQ(seqs_of(visit_all(ring, from, to)), want) << from << ".." << to;
    }
  }
}

TEST_F(ReplayRingTest, AGapDropsEverythingHeldFirst) {
  core::ReplayRing<Handle> ring(4);
  for (int seq = 1; seq <= 6; ++seq)
    ring.push(static_cast<uint64_t>(seq), Handle(seq));
  ring.push(10, Handle(10));  // forward gap
  EXPECT_EQ(ring.size(), 1u);
  EXPECT_EQ(ring.first_seq(), 10u);
  EXPECT_EQ(ring.last_seq(), 10u);
  EXPECT_EQ(Handle::live, 1);
  for (int seq = 1; seq <= 6; ++seq)
    EXPECT_EQ(Handle::releases.count(seq), 1u) << seq;
  ring.push(11, Handle(11));
  EXPECT_EQ(seqs_of(visit_all(ring, 0, 100)), (std::vector<uint64_t>{10, 11}));

  ring.push(3, Handle(203));  // backwards, and a repeated seq, are gaps too
  EXPECT_EQ(seqs_of(visit_all(ring, 0, 100)), (std::vector<uint64_t>{3}));
  ring.push(3, Handle(1003));
  const auto held = visit_all(ring, 0, 100);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].id, 1003);
  EXPECT_EQ(Handle::live, 1);
}

TEST_F(ReplayRingTest, AnySeqWhenEmptyIncludingZeroAndHuge) {
  core::ReplayRing<Handle> ring(3);
  ring.push(0, Handle(100));
  ring.push(1, Handle(101));
  EXPECT_EQ(ring.first_seq(), 0u);
  EXPECT_EQ(seqs_of(visit_all(ring, 0, 0)), (std::vector<uint64_t>{0}));
  ring.clear();
  const uint64_t big = UINT64_MAX - 10;
  for (uint64_t s = big; s < big + 5; ++s)
    ring.push(s, Handle(static_cast<int>(s - big)));
  EXPECT_EQ(ring.first_seq(), big + 2);
  EXPECT_EQ(ring.last_seq(), big + 4);
  EXPECT_EQ(seqs_of(visit_all(ring, big, UINT64_MAX)),
            (std::vector<uint64_t>{big + 2, big + 3, big + 4}));
}

TEST_F(ReplayRingTest, ClearReleasesEntriesAndStorage) {
  core::ReplayRing<Handle> ring(6);
  for (int seq = 1; seq <= 4; ++seq)
    ring.push(static_cast<uint64_t>(seq), Handle(seq));
  ring.clear();
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(Handle::live, 0);
  EXPECT_EQ(Handle::releases.size(), 4u);
  EXPECT_TRUE(visit_all(ring, 0, UINT64_MAX).empty());
  ring.clear();  // twice is fine
  // Storage comes back lazily at the next push, and any seq is accepted.
  EXPECT_EQ(Handle::array_allocations, 1);
  ring.push(7, Handle(7));
  EXPECT_EQ(Handle::array_allocations, 2);
  EXPECT_EQ(ring.first_seq(), 7u);
  EXPECT_EQ(ring.size(), 1u);
}

TEST_F(ReplayRingTest, DestructorReleasesEverythingHeld) {
  {
    core::ReplayRing<Handle> ring(4);
    for (int seq = 1; seq <= 9; ++seq)
      ring.push(static_cast<uint64_t>(seq), Handle(seq));
    EXPECT_EQ(Handle::live, 4);
  }
  EXPECT_EQ(Handle::live, 0);
  EXPECT_EQ(Handle::releases.size(), 9u);
}

TEST_F(ReplayRingTest, CapacityZeroKeepsNothing) {
  core::ReplayRing<Handle> ring(0);
  ring.push(1, Handle(1));
  ring.push(2, Handle(2));
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.size(), 0u);
  EXPECT_EQ(Handle::live, 0);
  EXPECT_EQ(Handle::array_allocations, 0);
  EXPECT_TRUE(visit_all(ring, 0, UINT64_MAX).empty());
}

TEST_F(ReplayRingTest, CapacityOne) {
  core::ReplayRing<Handle> ring(1);
  for (int seq = 1; seq <= 5; ++seq) {
    ring.push(static_cast<uint64_t>(seq), Handle(seq));
    EXPECT_EQ(ring.first_seq(), static_cast<uint64_t>(seq));
    EXPECT_EQ(ring.last_seq(), static_cast<uint64_t>(seq));
    EXPECT_EQ(Handle::live, 1);
  }
  EXPECT_EQ(seqs_of(visit_all(ring, 0, 100)), (std::vector<uint64_t>{5}));
}

TEST_F(ReplayRingTest, MoveLeavesTheSourceEmpty) {
  core::ReplayRing<Handle> a(4);
  for (int seq = 1; seq <= 6; ++seq)
    a.push(static_cast<uint64_t>(seq), Handle(seq));
  core::ReplayRing<Handle> b(std::move(a));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  EXPECT_TRUE(visit_all(a, 0, UINT64_MAX).empty());
  EXPECT_EQ(seqs_of(visit_all(b, 0, UINT64_MAX)), (std::vector<uint64_t>{3, 4, 5, 6}));
  a.push(1, Handle(100));  // still usable
  EXPECT_EQ(a.size(), 1u);

  core::ReplayRing<Handle> c(2);
  c.push(50, Handle(50));
  c = std::move(b);  // releases what c held
  EXPECT_EQ(Handle::releases.count(50), 1u);
  EXPECT_EQ(c.capacity(), 4u);
  EXPECT_EQ(seqs_of(visit_all(c, 0, UINT64_MAX)), (std::vector<uint64_t>{3, 4, 5, 6}));
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(Handle::live, 5);
}

TEST_F(ReplayRingTest, WorksWithACopyableSharedHandle) {
  auto message = std::make_shared<int>(42);
  {
    core::ReplayRing<std::shared_ptr<int>> ring(3);
    for (uint64_t seq = 1; seq <= 10; ++seq)
      ring.push(seq, message);  // copied in, as a fan-out pushes one message to many rings
    EXPECT_EQ(message.use_count(), 4);
  }
  EXPECT_EQ(message.use_count(), 1);
}

// Random pushes (mostly contiguous, some gaps), queries and clears, against a deque model.
TEST_F(ReplayRingTest, MatchesAModelUnderRandomOperations) {
  std::mt19937_64 rng(12345);
  int next_id = 0;  // unique across the whole test, so double releases show
  for (uint32_t capacity : {1u, 2u, 3u, 7u, 16u, 100u}) {
    core::ReplayRing<Handle> ring(capacity);
    std::deque<std::pair<uint64_t, int>> model;
    uint64_t next_seq = 1;
    for (int step = 0; step < 5000; ++step) {
      const uint64_t op = rng() % 100;
      if (op < 80) {
        uint64_t seq = next_seq;
        if (op < 4) seq = rng() % 1000;  // a gap (or, by chance, contiguous)
        if (!model.empty() && seq != model.back().first + 1) model.clear();
        const int id = next_id++;
        ring.push(seq, Handle(id));
        model.emplace_back(seq, id);
        if (model.size() > capacity) model.pop_front();
        next_seq = seq + 1;
      } else if (op < 99) {
        const uint64_t base = model.empty() ? 0 : model.front().first;
        const uint64_t from = base + rng() % (capacity + 4) - std::min<uint64_t>(base, 2);
        const uint64_t to = from + rng() % (capacity + 4) - 1;
        std::vector<Visit> want;
        for (const auto& [s, id] : model) {
          if (s >= from && s <= to) want.push_back({s, id, nullptr});
        }
        ASSERT_EQ(visit_all(ring, from, to), want) << "capacity " << capacity << " step " << step;
      } else {
        ring.clear();
        model.clear();
      }
      ASSERT_EQ(ring.size(), model.size());
      ASSERT_EQ(ring.empty(), model.empty());
      ASSERT_EQ(Handle::live, static_cast<int>(model.size()));
      if (!model.empty()) {
        ASSERT_EQ(ring.first_seq(), model.front().first);
        ASSERT_EQ(ring.last_seq(), model.back().first);
      }
    }
  }
}

}  // namespace
}  // namespace odin
