#include "base/thread_pool.h"

#include <chrono>
#include <system_error>

#include "base/error.h"

namespace kvpack {
namespace {

thread_local bool t_inside_task = false;

// How long an idle worker spins before sleeping: long enough to catch the next decode-step job
// without a futex round trip, short enough not to burn a core when idle.
constexpr auto kSpinTime = std::chrono::microseconds(200);

}  // namespace

int ThreadPool::hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

int checked_thread_count(int64_t requested) {
  const int cores = ThreadPool::hardware_threads();
  const int64_t limit = int64_t{kMaxThreadsPerCore} * cores;
  if (requested == 0 || requested == -1) return cores;
  if (requested < -1 || requested > limit) {
    fail(
        "-t {}: expected 1 to {} threads ({} per hardware thread; this machine has {}), or 0 "
        "for one per hardware thread",
        requested, limit, kMaxThreadsPerCore, cores);
  }
  return static_cast<int>(requested);
}

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = hardware_threads();
  workers_.reserve(static_cast<size_t>(n_threads - 1));
  try {
    for (int t = 1; t < n_threads; ++t) workers_.emplace_back([this, t] { worker_loop(t); });
  } catch (const std::system_error& e) {
    const size_t started = workers_.size() + 1;
    stop_workers();  // the destructor does not run for a constructor that throws
    fail("cannot start {} threads (the system refused after {}): {}", n_threads, started, e.what());
  }
}

ThreadPool::~ThreadPool() {
  stop_workers();
}

void ThreadPool::stop_workers() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

void ThreadPool::run_tasks(int thread) {
  t_inside_task = true;
  for (;;) {
    const int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= n_tasks_) break;
    try {
      (*job_)(task, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
      next_task_.store(n_tasks_, std::memory_order_relaxed);  // skip what is left
    }
  }
  t_inside_task = false;
}

void ThreadPool::worker_loop(int thread) {
  uint32_t seen = 0;  // the generation before any job (the pool bumps it only after starting us)
  for (;;) {
    const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
    uint32_t g = generation_.load(std::memory_order_acquire);
    while (g == seen && std::chrono::steady_clock::now() < spin_until) {
      std::this_thread::yield();
      g = generation_.load(std::memory_order_acquire);
    }
    while (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    run_tasks(thread);
    if (busy_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) busy_workers_.notify_all();
  }
}

void ThreadPool::parallel_for(int64_t n_tasks,
                              const std::function<void(int64_t task, int thread)>& fn) {
  if (n_tasks <= 0) return;
  if (t_inside_task || workers_.empty() || n_tasks == 1) {
    for (int64_t i = 0; i < n_tasks; ++i) fn(i, 0);
    return;
  }
  std::lock_guard<std::mutex> one_job_at_a_time(call_mutex_);
  job_ = &fn;
  n_tasks_ = n_tasks;
  error_ = nullptr;
  next_task_.store(0, std::memory_order_relaxed);
  busy_workers_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  run_tasks(0);
  const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
  int busy = busy_workers_.load(std::memory_order_acquire);
  while (busy != 0 && std::chrono::steady_clock::now() < spin_until) {
    std::this_thread::yield();
    busy = busy_workers_.load(std::memory_order_acquire);
  }
  while (busy != 0) {
    busy_workers_.wait(busy, std::memory_order_acquire);
    busy = busy_workers_.load(std::memory_order_acquire);
  }
  job_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace kvpack
