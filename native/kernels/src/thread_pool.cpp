#include "thread_pool.h"

#include <chrono>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LK_PAUSE() _mm_pause()
#else
#define LK_PAUSE() std::this_thread::yield()
#endif

namespace lk {

// How long an idle worker polls for the next job before sleeping.
constexpr auto kSpinFor = std::chrono::microseconds(100);

ThreadPool::ThreadPool(int threads) { start(threads); }
ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::start(int threads) {
  stopping_ = false;
  // Workers start from the generation current now: one that reads it later could miss a job
  // posted before it got going, and the caller would wait for it forever.
  const uint64_t seen = generation_.load(std::memory_order_acquire);
  for (int i = 1; i < threads; i++) workers_.emplace_back([this, seen] { workerLoop(seen); });
}

void ThreadPool::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

void ThreadPool::resize(int threads) {
  if (threads < 1) threads = 1;
  if (threads == size()) return;
  stop();
  start(threads);
}

void ThreadPool::drain() {
  for (;;) {
    const int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
    if (t >= nTasks_) return;
    fn_(ctx_, t);
  }
}

void ThreadPool::workerLoop(uint64_t seen) {
  for (;;) {
    auto spinStart = std::chrono::steady_clock::now();
    int polls = 0;
    while (generation_.load(std::memory_order_acquire) == seen && !stopping_.load(std::memory_order_acquire)) {
      LK_PAUSE();
      if (++polls % 64 == 0 && std::chrono::steady_clock::now() - spinStart > kSpinFor) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_.load() != seen || stopping_.load(); });
      }
    }
    if (stopping_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    drain();
    checkedOut_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(int64_t nTasks, TaskFn fn, void* ctx) {
  if (nTasks <= 0) return;
  if (workers_.empty() || nTasks == 1) {
    for (int64_t t = 0; t < nTasks; t++) fn(ctx, t);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  nTasks_ = nTasks;
  next_.store(0, std::memory_order_relaxed);
  checkedOut_.store(0, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(mu_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  cv_.notify_all();
  drain();
  // Every worker must have left this job before its fields are reused by the next one.
  const int n = int(workers_.size());
  while (checkedOut_.load(std::memory_order_acquire) < n) LK_PAUSE();
}

}  // namespace lk
