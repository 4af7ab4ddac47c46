#include "cpu_select.h"

#include <cstdlib>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace lk {

#if defined(__x86_64__) || defined(_M_X64)
// __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0).
static bool hasAvx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
static bool hasAvx512() {
  return hasAvx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}
// vdpbf16ps (Zen 4 and later, Cooper Lake, Sapphire Rapids and later).
static bool hasAvx512Bf16() { return hasAvx512() && __builtin_cpu_supports("avx512bf16"); }

static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
  r[0] = leaf;
  r[2] = sub;
  __asm__ volatile("cpuid" : "+a"(r[0]), "=b"(r[1]), "+c"(r[2]), "=d"(r[3]));
}

// AMX-TILE and AMX-BF16 (CPUID leaf 7: EDX bits 24 and 22), with the OS saving the tile state
// (XCR0 bits 17 and 18, readable once CPUID leaf 1 reports OSXSAVE).
static bool cpuHasAmxBf16() {
  unsigned r[4];
  cpuid(7, 0, r);
  if ((r[3] & (1u << 24)) == 0 || (r[3] & (1u << 22)) == 0) return false;
  cpuid(1, 0, r);
  if ((r[2] & (1u << 27)) == 0) return false;
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & (3u << 17)) == (3u << 17);
}

// The tiles are usable once Linux grants this process the tile data state (arch_prctl
// ARCH_REQ_XCOMP_PERM, Linux 5.16 and later); without the grant the first tile instruction
// faults. Asked once; a refusal leaves the variant unsupported, never a fault.
static bool amxUsable() {
  static const bool ok = [] {
    if (!hasAvx512Bf16() || !cpuHasAmxBf16()) return false;
#if defined(__linux__)
    constexpr long kGetPerm = 0x1022, kReqPerm = 0x1023, kTileData = 18;
    if (syscall(SYS_arch_prctl, kReqPerm, kTileData) != 0) return false;
    unsigned long granted = 0;
    return syscall(SYS_arch_prctl, kGetPerm, &granted) == 0 && (granted & (1ul << kTileData)) != 0;
#else
    return false;
#endif
  }();
  return ok;
}
#endif

// GCC 12's __builtin_cpu_supports knows "avx512vnni" but not "avxvnni": CPUID leaf 7 subleaf 1,
// EAX bit 4, read directly (the AVX2 check covers the OS saving the registers).
bool cpuHasAvxVnni() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  unsigned a = 7, b = 0, c = 1, d = 0;
  __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
  return hasAvx2() && (a & (1u << 4)) != 0;
#else
  return false;
#endif
}

std::vector<std::string> cpuFeatures() {
  std::vector<std::string> out;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
#define LK_FEATURE(f) \
  if (__builtin_cpu_supports(f)) out.emplace_back(f);
  LK_FEATURE("sse4.2")
  LK_FEATURE("avx")
  LK_FEATURE("avx2")
  LK_FEATURE("fma")
  LK_FEATURE("f16c")
  LK_FEATURE("avx512f")
  LK_FEATURE("avx512bw")
  LK_FEATURE("avx512vl")
  LK_FEATURE("avx512vnni")
  LK_FEATURE("avx512bf16")
#undef LK_FEATURE
  if (cpuHasAvxVnni()) out.emplace_back("avxvnni");
  if (cpuHasAmxBf16()) out.emplace_back(amxUsable() ? "amx-bf16" : "amx-bf16 (not granted by the OS)");
#endif
  return out;
}

std::vector<std::string> emulatedVariants() {
  std::vector<std::string> out;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (hasAvx512Bf16()) out.emplace_back("amxbf16-emulated");
  if (hasAvx512() && __builtin_cpu_supports("avx512vnni")) out.emplace_back("avx512-novnni");
  if (hasAvx2() && cpuHasAvxVnni()) out.emplace_back("avx2-novnni");
#endif
  return out;
}

std::vector<std::string> supportedVariants() {
  std::vector<std::string> out;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (amxUsable()) out.emplace_back("amxbf16");
  if (hasAvx512Bf16()) out.emplace_back("avx512bf16");
  if (hasAvx512()) out.emplace_back("avx512");
  if (hasAvx2()) out.emplace_back("avx2");
#endif
  out.emplace_back("portable");
  return out;
}

const KernelTable* variantTable(const std::string& name) {
#if defined(__x86_64__) || defined(_M_X64)
  for (const auto& v : emulatedVariants())
    if (v == name) {
      if (v == "avx2-novnni") return table_avx2_novnni();
      if (v == "avx512-novnni") return table_avx512_novnni();
      return table_amxbf16_emulated();
    }
#endif
  for (const auto& v : supportedVariants()) {
    if (v != name) continue;
#if defined(__x86_64__) || defined(_M_X64)
    if (v == "amxbf16") return table_amxbf16();
    if (v == "avx512bf16") return table_avx512bf16();
    if (v == "avx512") return table_avx512();
    if (v == "avx2") return table_avx2();
#endif
    return table_portable();
  }
  return nullptr;
}

VariantChoice chooseVariant() {
  const std::string best = supportedVariants().front();
  const char* env = std::getenv("LAMINA_KERNEL_VARIANT");
  if (env && *env) {
    const std::string want(env);
    if (const KernelTable* t = variantTable(want)) return {t, "forced by LAMINA_KERNEL_VARIANT=" + want};
    return {variantTable(best), "LAMINA_KERNEL_VARIANT=" + want + " is unknown or unsupported by this CPU; using " +
                                    best + ", the best it supports"};
  }
  return {variantTable(best), best == "portable" ? "no AVX2+FMA+F16C on this CPU" : "best variant this CPU supports"};
}

}  // namespace lk
