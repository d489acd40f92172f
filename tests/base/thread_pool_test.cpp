#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "base/error.h"

namespace kvpack {
namespace {

TEST(ThreadPool, RunsEveryTaskOnceWithValidThreadIndex) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 7, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<bool> bad_thread{false};
      pool.parallel_for(n, [&](int64_t task, int thread) {
        hits[static_cast<size_t>(task)].fetch_add(1);
        if (thread < 0 || thread >= threads) bad_thread = true;
      });
      for (auto& h : hits) EXPECT_EQ(h.load(), 1);
      EXPECT_FALSE(bad_thread);
    }
  }
}

TEST(ThreadPool, RethrowsTheFirstExceptionAndStaysUsable) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for(100,
                                 [](int64_t task, int) {
                                   if (task == 17) throw std::runtime_error("task 17");
                                 }),
               std::runtime_error);
  std::atomic<int64_t> sum{0};
  pool.parallel_for(100, [&](int64_t task, int) { sum += task; });
  EXPECT_EQ(sum.load(), 4950);
}

TEST(ThreadPool, NestedCallsRunSerially) {
  ThreadPool pool(2);
  std::atomic<int> inner{0};
  pool.parallel_for(4, [&](int64_t, int) {
    pool.parallel_for(3, [&](int64_t, int thread) {
      EXPECT_EQ(thread, 0);
      ++inner;
    });
  });
  EXPECT_EQ(inner.load(), 12);
}

TEST(ThreadPool, ManyShortJobs) {
  ThreadPool pool(2);
  int64_t total = 0;
  for (int j = 0; j < 2000; ++j) {
    std::atomic<int64_t> s{0};
    pool.parallel_for(2, [&](int64_t t, int) { s += t + 1; });
    total += s;
  }
  EXPECT_EQ(total, 2000 * 3);
}

// -t 40000 aborted when thread creation failed and -t 1000 started them on two cores: a user's
// request is bounded before any thread starts, with the limit in the message.
TEST(ThreadPool, UserThreadCountsAreBounded) {
  const int cores = ThreadPool::hardware_threads();
  EXPECT_EQ(checked_thread_count(0), cores);
  EXPECT_EQ(checked_thread_count(-1), cores);
  EXPECT_EQ(checked_thread_count(1), 1);
  EXPECT_EQ(checked_thread_count(kMaxThreadsPerCore * cores), kMaxThreadsPerCore * cores);
  for (const int64_t bad : {int64_t{-2}, int64_t{kMaxThreadsPerCore} * cores + 1, int64_t{40000}}) {
    try {
      checked_thread_count(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(e.message().find("-t " + std::to_string(bad) + ": expected 1 to " +
                                 std::to_string(kMaxThreadsPerCore * cores) + " threads"),
                std::string::npos)
          << e.message();
    }
  }
}

}  // namespace
}  // namespace kvpack
