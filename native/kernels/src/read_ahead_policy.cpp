#include "read_ahead_policy.h"

#include <atomic>

namespace lk {

namespace {

// -1: the CPU's default; 0 or 1: forced by setReadAhead.
std::atomic<int> gMode{-1};

// The CPU vendor (CPUID leaf 0) is Intel.
bool cpuIsIntel() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  return __builtin_cpu_is("intel");
#else
  return false;
#endif
}

}  // namespace

bool readAhead() {
  const int forced = gMode.load(std::memory_order_relaxed);
  if (forced >= 0) return forced == 1;
  static const bool intel = cpuIsIntel();
  return intel;
}

bool readAheadBf16Dot() {
  const int forced = gMode.load(std::memory_order_relaxed);
  return forced < 0 || forced == 1;
}

void setReadAhead(int mode) { gMode.store(mode < 0 ? -1 : mode ? 1 : 0, std::memory_order_relaxed); }

}  // namespace lk
