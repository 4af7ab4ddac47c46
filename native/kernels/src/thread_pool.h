// A small persistent pool: n-1 worker threads plus the calling thread share each job's tasks
// through an atomic counter. Idle workers spin briefly (a decode step calls kernels back to back)
// and then sleep on a condition variable so an idle process costs no CPU. The caller waits only
// for workers that joined a job, never for one that has not woken yet.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace lk {

class ThreadPool {
 public:
  using TaskFn = void (*)(void* ctx, int64_t task);

  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /** Threads working on a job, the caller included. */
  int size() const { return int(workers_.size()) + 1; }
  void resize(int threads);

  /** Runs fn(ctx, t) for every t in [0, nTasks) and returns when all have finished. */
  void run(int64_t nTasks, TaskFn fn, void* ctx);

  /** Same, for a callable taking the task index; no allocation. */
  template <class F>
  void forEach(int64_t nTasks, F&& f) {
    using Fn = std::remove_reference_t<F>;
    run(nTasks, [](void* c, int64_t t) { (*static_cast<Fn*>(c))(t); }, const_cast<void*>(static_cast<const void*>(&f)));
  }

 private:
  void start(int threads);
  void stop();
  void workerLoop(uint64_t seen);
  void drain();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  // The current job: its generation in the high 32 bits, an "open" bit (workers may join), and
  // the count of workers that joined and have not left yet in the low bits.
  static constexpr int kGenShift = 32;
  static constexpr uint64_t kOpen = uint64_t(1) << 31;
  static constexpr uint64_t kCountMask = kOpen - 1;
  std::atomic<uint64_t> state_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> next_{0};
  int64_t nTasks_ = 0;
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
};

}  // namespace lk
