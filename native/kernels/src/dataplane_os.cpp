// The operating-system calls of the native data plane: a futex on a word of a shared mapping,
// a liveness check of the peer process, and a probe of how often the host takes a core away.
#include <cstdint>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>

#include <unistd.h>
#include <thread>
#if defined(__linux__)
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#endif

#include "dataplane_layout.h"

namespace lk::dp {

void futexWait(std::atomic<int32_t>* w, int32_t expected, int64_t timeoutNs) {
#if defined(__linux__)
  timespec ts{time_t(timeoutNs / 1000000000), long(timeoutNs % 1000000000)};
  syscall(SYS_futex, reinterpret_cast<int32_t*>(w), FUTEX_WAIT, expected, &ts, nullptr, 0);
#else
  (void)w;
  (void)expected;
  timespec ts{0, long(std::min<int64_t>(timeoutNs, 100000))};
  nanosleep(&ts, nullptr);
#endif
}

void futexWake(std::atomic<int32_t>* w) {
#if defined(__linux__)
  // Every sleeper: the model workers of one rotation may all sleep on the reply doorbell.
  syscall(SYS_futex, reinterpret_cast<int32_t*>(w), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
#else
  (void)w;
#endif
}

bool pidAlive(int32_t pid) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
#if defined(__linux__)
  // A zombie (exited, not yet reaped) answers kill() but will never reply.
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", int(pid));
  FILE* f = std::fopen(path, "r");
  if (!f) return true;
  char buf[256];
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* close = std::strrchr(buf, ')');
  if (close && close[1] == ' ' && (close[2] == 'Z' || close[2] == 'X')) return false;
#endif
  return true;
}

JitterStats hostJitter(int64_t durationNs, int cpu) {
  JitterStats r;
  auto probe = [&] {
#if defined(__linux__)
    if (cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      r.pinned = pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
    }
#endif
    // A core running this loop reads the clock every few tens of ns; any longer step between two
    // reads is time the core ran something else (an interrupt, the host, another thread).
    constexpr int64_t kGapNs = 2000;
    const int64_t t0 = nowNs();
    int64_t last = t0;
    for (;;) {
      const int64_t t = nowNs();
      const int64_t g = t - last;
      if (g > kGapNs) {
        r.gaps++;
        r.lostNs += g;
        r.longestNs = std::max(r.longestNs, g);
      }
      last = t;
      if (t - t0 >= durationNs) break;
    }
    r.elapsedNs = last - t0;
  };
  std::thread(probe).join();
  return r;
}

}  // namespace lk::dp
