// How this addon waits for another thread without a system call first, shared by the kernel
// pool's idle workers and the data plane's waits: spin on the core alone for kPureSpinNs, then
// offer the core to other runnable threads at every step (a yield returns at once when there are
// none). Where busy threads outnumber cores, a spinner that never gives way holds a core the
// thread it waits for may need until the scheduler takes it away, a whole time slice later.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace lk {

/** A monotonic clock in nanoseconds. */
inline int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/** One step of a busy-wait: tells the core this is a spin loop (cheaper for its sibling and power). */
inline void cpuRelax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

/** How long a wait spins on its core alone before each step also offers the core to others. */
constexpr int64_t kPureSpinNs = 20'000;

/**
 * The pure spin of the data plane's waits (both ends of the exchange): kPureSpinNs, or longer in
 * a process bound to cores of its own (setExchangePureSpinNs, through core binding). There the
 * other side of each hand-off runs on other cores, and a yield only hands the core to this
 * process's HTTP thread while the reply is due. The kernel pool keeps kPureSpinNs: its idle
 * workers share their cores with the thread whose next job they wait for.
 */
inline std::atomic<int64_t>& exchangePureSpinNs() {
  static std::atomic<int64_t> ns{kPureSpinNs};
  return ns;
}

inline void setExchangePureSpinNs(int64_t ns) { exchangePureSpinNs().store(ns, std::memory_order_relaxed); }

/** One step of a wait that has spun `spunNs` so far and spins alone for its first `pureNs`. */
inline void spinStep(int64_t spunNs, int64_t pureNs = kPureSpinNs) {
  if (spunNs < pureNs)
    cpuRelax();
  else
    std::this_thread::yield();
}

/**
 * First tokens the server's HTTP thread has yet to send: its engine thread counts each batch of
 * token events with a request's first token as it posts it (outputPosted), the HTTP thread marks
 * the batches it has written (outputSent). Where core binding puts the HTTP thread on the engine's
 * core, it runs only when the engine offers that core, and a wait for an attention worker that
 * spins alone holds it back a scheduler time slice (4 ms at 250 Hz) while a new stream's first
 * token waits; such a wait offers the core at every step instead. Only first tokens count: every
 * batch counted would hand the core over each step, and decode steps would pay for it.
 */
inline std::atomic<uint32_t>& outputPosted() {
  static std::atomic<uint32_t> n{0};
  return n;
}
inline std::atomic<uint32_t>& outputSent() {
  static std::atomic<uint32_t> n{0};
  return n;
}
/** Marks the batches up to `n` sent; a mark older than the last one (another engine's) changes nothing. */
inline void markOutputSent(uint32_t n) {
  std::atomic<uint32_t>& sent = outputSent();
  uint32_t now = sent.load(std::memory_order_relaxed);
  while (int32_t(n - now) > 0 && !sent.compare_exchange_weak(now, n, std::memory_order_relaxed)) {
  }
}
inline bool outputWaiting() {
  return outputPosted().load(std::memory_order_relaxed) != outputSent().load(std::memory_order_relaxed);
}

/**
 * One step of a data-plane wait (either end of the exchange): alone for exchangePureSpinNs, unless
 * a first token waits for this process's HTTP thread (then the core is offered at every step).
 */
inline void exchangeSpinStep(int64_t spunNs) {
  spinStep(spunNs, outputWaiting() ? 0 : exchangePureSpinNs().load(std::memory_order_relaxed));
}

/**
 * A data-plane wait's spin: exchangeSpinStep until done() or budgetNs has passed (done() is asked
 * first, so a ready wait costs no step); returns the nanoseconds spun, which the caller reports.
 */
template <class Done>
inline int64_t exchangeSpin(int64_t budgetNs, Done done) {
  const int64_t t0 = nowNs();
  for (int64_t spun = 0; !done() && spun < budgetNs; spun = nowNs() - t0) exchangeSpinStep(spun);
  return nowNs() - t0;
}

}  // namespace lk
