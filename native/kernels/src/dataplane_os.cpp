// The operating-system calls of the native data plane: a futex on a word of a shared mapping,
// a liveness check of the peer process, and a monotonic clock.
#include <cstdint>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>

#include <unistd.h>
#if defined(__linux__)
#include <linux/futex.h>
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

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace lk::dp
