#include "cpu_select.h"

#include <cstdlib>

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
#endif
  return out;
}

std::vector<std::string> supportedVariants() {
  std::vector<std::string> out;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (hasAvx512Bf16()) out.emplace_back("avx512bf16");
  if (hasAvx512()) out.emplace_back("avx512");
  if (hasAvx2()) out.emplace_back("avx2");
#endif
  out.emplace_back("portable");
  return out;
}

const KernelTable* variantTable(const std::string& name) {
  for (const auto& v : supportedVariants()) {
    if (v != name) continue;
#if defined(__x86_64__) || defined(_M_X64)
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
