#include "read_ahead_policy.h"

#include <atomic>
#include <cstring>

namespace lk {

namespace {

// -1: the CPU's default; 0 or 1: forced by setReadAhead.
std::atomic<int> gMode{-1};

// CPUID leaf 0's vendor string (EBX, EDX, ECX) reads "GenuineIntel".
bool cpuIsIntel() {
#if defined(__x86_64__) || defined(_M_X64)
  unsigned r[4] = {0, 0, 0, 0};
  __asm__ volatile("cpuid" : "+a"(r[0]), "=b"(r[1]), "+c"(r[2]), "=d"(r[3]));
  char v[12];
  std::memcpy(v, &r[1], 4);
  std::memcpy(v + 4, &r[3], 4);
  std::memcpy(v + 8, &r[2], 4);
  return std::memcmp(v, "GenuineIntel", 12) == 0;
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

void setReadAhead(int mode) { gMode.store(mode < 0 ? -1 : mode ? 1 : 0, std::memory_order_relaxed); }

}  // namespace lk
