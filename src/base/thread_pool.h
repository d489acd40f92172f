// One persistent pool of worker threads, passed to whoever needs it (never a singleton).
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kvpack {

// At most this many threads per hardware thread. More only adds switching (idle workers spin
// briefly between jobs), and a typo such as -t 1000 must not start a thousand threads on two
// cores, nor -t 40000 run into the system's limit halfway through starting them.
inline constexpr int kMaxThreadsPerCore = 4;

// The thread count a user asked for (-t N), checked before any work: 0 and -1 (llama.cpp's
// default) mean one per hardware thread; 1 up to kMaxThreadsPerCore x hardware threads are
// taken as given. Anything else throws Error naming the limit on this machine.
int checked_thread_count(int64_t requested);

class ThreadPool {
 public:
  // n_threads counts the calling thread: a pool of 2 starts one worker. 0 means one per core.
  // Throws Error when the system cannot start that many threads (none is left running).
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(task, thread) for every task in [0, n_tasks). Tasks are claimed dynamically; the
  // caller works too, as thread 0, so `thread` indexes per-thread scratch in [0, size()).
  // Blocks until all tasks finish; the first exception thrown by a task is rethrown here.
  // A call from inside a task runs its tasks serially on that thread; calls from different
  // threads outside the pool take turns.
  void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)>& fn);

  static int hardware_threads();

 private:
  void worker_loop(int thread);
  void stop_workers();
  void run_tasks(int thread);

  std::vector<std::thread> workers_;
  const std::function<void(int64_t, int)>* job_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_task_{0};
  std::atomic<uint32_t> generation_{0};  // bumped to start a job; workers wait on it
  std::atomic<int> busy_workers_{0};     // workers still inside the current job
  std::atomic<bool> stop_{false};
  std::mutex call_mutex_;
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace kvpack
