#include "thread_pool.h"

#include "spin_wait.h"

namespace lk {

// How long an idle worker polls for the next job before sleeping. Its polls give way after
// kPureSpinNs (spin_wait.h): where threads outnumber cores (two vCPUs, an HTTP thread, a client,
// an attention worker) a worker that polled through its whole budget without giving way took the
// core from the thread whose job it was waiting for: a kernel call with a 200 µs gap before it
// took 117 µs instead of 5.
constexpr int64_t kSpinForNs = 100'000;

ThreadPool::ThreadPool(int threads) { start(threads); }
ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::start(int threads) {
  stopping_ = false;
  // Workers start from the generation current now: one that reads it later could miss a job
  // posted before it got going.
  const uint64_t seen = state_.load(std::memory_order_acquire) >> kGenShift;
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
  const auto generation = [this] { return state_.load(std::memory_order_acquire) >> kGenShift; };
  for (;;) {
    const int64_t t0 = nowNs();
    for (int64_t spun = 0; generation() == seen && !stopping_.load(std::memory_order_acquire);
         spun = nowNs() - t0) {
      if (spun > kSpinForNs) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation() != seen || stopping_.load(); });
      } else {
        spinStep(spun);
      }
    }
    if (stopping_.load(std::memory_order_acquire)) return;
    // Join the job only while it is open and still the one seen: a worker that wakes after the
    // caller has finished it (every task taken, the job closed) has nothing to do and must not
    // touch the job's fields, which the next job may already be rewriting.
    uint64_t s = state_.load(std::memory_order_acquire);
    seen = s >> kGenShift;
    bool joined = false;
    while ((s >> kGenShift) == seen && (s & kOpen) != 0) {
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        joined = true;
        break;
      }
    }
    if (!joined) continue;
    drain();
    state_.fetch_sub(1, std::memory_order_acq_rel);
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
  {
    // A new generation, open, nobody joined yet (the last job ended with its count at 0).
    std::lock_guard<std::mutex> lk(mu_);
    const uint64_t gen = (state_.load(std::memory_order_relaxed) >> kGenShift) + 1;
    state_.store((gen << kGenShift) | kOpen, std::memory_order_release);
  }
  cv_.notify_all();
  drain();
  // Every task is taken. Close the job, so no worker joins it from now on, and wait only for
  // the workers that joined (they may still be running a task). A worker the scheduler has not
  // run since the job was posted is not waited for: on a machine with more busy threads than
  // cores that wait is a whole time slice, for a job the caller has already done.
  state_.fetch_and(~kOpen, std::memory_order_acq_rel);
  // A joined worker the scheduler took the core from needs a core to finish its task.
  const int64_t t0 = nowNs();
  for (int64_t spun = 0; (state_.load(std::memory_order_acquire) & kCountMask) != 0; spun = nowNs() - t0)
    spinStep(spun);
}

}  // namespace lk
