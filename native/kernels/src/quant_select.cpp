// Which quantized-product variant runs (see quant_kernels.h), and the scalar row dequantization
// that embedding lookups of a quantized table use.
#include <cmath>
#include <cstring>

#include "cpu_select.h"
#include "quant_kernels.h"

namespace lk {

#if defined(__x86_64__) || defined(_M_X64)
static bool hasAvx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
static bool hasAvx512() {
  return hasAvx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}
#endif

std::vector<std::string> supportedQuantVariants() {
  std::vector<std::string> out;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (hasAvx512() && __builtin_cpu_supports("avx512vnni")) out.emplace_back("avx512vnni");
  if (hasAvx512()) out.emplace_back("avx512");
  if (cpuHasAvxVnni()) out.emplace_back("avx2vnni");
  if (hasAvx2()) out.emplace_back("avx2");
#endif
  out.emplace_back("portable");
  return out;
}

const QuantTable* quantTable(const std::string& name) {
  for (const auto& v : supportedQuantVariants()) {
    if (v != name) continue;
#if defined(__x86_64__) || defined(_M_X64)
    if (v == "avx512vnni") return quant_table_avx512vnni();
    if (v == "avx512") return quant_table_avx512();
    if (v == "avx2vnni") return quant_table_avx2vnni();
    if (v == "avx2") return quant_table_avx2();
#endif
    return quant_table_portable();
  }
  return nullptr;
}

const QuantTable* quantTableFor(const std::string& mainVariant) {
  // The main variant's family: an "avx512..." variant with extra features is still avx512, and so
  // is an "amx..." one (its build is avx512bf16's plus the tiles; every AMX CPU has AVX-512).
  const auto startsWith = [&](const char* p) { return mainVariant.rfind(p, 0) == 0; };
  const char* family = startsWith("avx512") || startsWith("amx") ? "avx512" : startsWith("avx2") ? "avx2" : nullptr;
  if (family) {
    if (const QuantTable* t = quantTable(std::string(family) + "vnni")) return t;
    if (const QuantTable* t = quantTable(family)) return t;
  }
  return quant_table_portable();
}

namespace {

float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const float s = h & 0x8000 ? -1.0f : 1.0f;
  if (e == 0) return s * std::ldexp(float(m), -24);
  if (e == 31) return m ? NAN : s * INFINITY;
  return s * std::ldexp(float(1024 + m), e - 25);
}

void scaleMin(int j, const uint8_t* s, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// 32 values from 16 nibble bytes (Q4_0's order), each d times the level it indexes (IQ4_NL's,
// or MXFP4's).
void levels32(float* o, const uint8_t* qs, float d, const int8_t* levels = kIq4nlLevels) {
  for (int j = 0; j < 16; j++) {
    o[j] = d * float(levels[qs[j] & 15]);
    o[j + 16] = d * float(levels[qs[j] >> 4]);
  }
}

void dequantBlock(float* o, const uint8_t* b, int qtype) {
  if (qtype == kQ8_0) {
    const float d = half(b);
    for (int j = 0; j < 32; j++) o[j] = d * float(int8_t(b[2 + j]));
  } else if (qtype == kQ4_0 || qtype == kQ4_1 || qtype == kQ5_0 || qtype == kQ5_1) {
    // d, then m (the _1 formats), then the fifth bits as a u32 (Q5_*), then the nibbles.
    const bool min = qtype == kQ4_1 || qtype == kQ5_1, five = qtype == kQ5_0 || qtype == kQ5_1;
    const float d = half(b), m = min ? half(b + 2) : 0.0f;
    const uint8_t* p = b + (min ? 4 : 2);
    uint32_t qh = 0;
    if (five) std::memcpy(&qh, p, 4);
    const uint8_t* qs = p + (five ? 4 : 0);
    const int off = min ? 0 : five ? 16 : 8;
    for (int j = 0; j < 16; j++) {
      const int lo = (qs[j] & 15) | (five ? int((qh >> j) & 1) << 4 : 0);
      const int hi = (qs[j] >> 4) | (five ? int((qh >> (j + 16)) & 1) << 4 : 0);
      o[j] = d * float(lo - off) + m;
      o[j + 16] = d * float(hi - off) + m;
    }
  } else if (qtype == kIQ4_NL) {
    levels32(o, b + 2, half(b));
  } else if (qtype == kMXFP4) {
    levels32(o, b + 1, e8m0Half(b[0]), kMxfp4Levels);
  } else if (qtype == kIQ4_XS) {
    const float d = half(b);
    for (int blk = 0; blk < 8; blk++) levels32(o + 32 * blk, b + 8 + 16 * blk, d * float(iq4xsScale(b, blk) - 32));
  } else if (qtype == kQ2_K) {
    const float d = half(b + 80), dmin = half(b + 82);
    for (int blk = 0; blk < 8; blk++) {
      const uint8_t* qs = b + 16 + (blk / 4) * 32;
      const int shift = 2 * (blk % 4);
      for (int l = 0; l < 32; l++) {
        const uint8_t s = b[2 * blk + l / 16];
        o[blk * 32 + l] = d * float(s & 15) * float((qs[l] >> shift) & 3) - dmin * float(s >> 4);
      }
    }
  } else if (qtype == kQ3_K) {
    const float d = half(b + 108);
    int sc[16];
    q3kScales(b + 96, sc);
    for (int blk = 0; blk < 8; blk++) {
      const uint8_t* qs = b + 32 + (blk / 4) * 32;
      const int shift = 2 * (blk % 4);
      for (int l = 0; l < 32; l++) {
        const int q = ((qs[l] >> shift) & 3) | (((b[l] >> blk) & 1) << 2);
        o[blk * 32 + l] = d * float(sc[2 * blk + l / 16] - 32) * float(q - 4);
      }
    }
  } else if (qtype == kQ4_K || qtype == kQ5_K) {
    const float d = half(b), dmin = half(b + 2);
    const bool five = qtype == kQ5_K;
    for (int sub = 0; sub < 8; sub++) {
      int sc, m;
      scaleMin(sub, b + 4, sc, m);
      const float ds = d * float(sc), mn = dmin * float(m);
      const uint8_t* qs = b + (five ? 48 : 16) + (sub / 2) * 32;
      for (int j = 0; j < 32; j++) {
        const int q = (sub % 2 ? qs[j] >> 4 : qs[j] & 15) | (five ? ((b[16 + j] >> sub) & 1) << 4 : 0);
        o[sub * 32 + j] = ds * float(q) - mn;
      }
    }
  } else {
    const float d = half(b + 208);
    for (int sub = 0; sub < 8; sub++) {
      const int n = sub / 4, k = sub % 4;
      const uint8_t* ql = b + n * 64 + (k % 2) * 32;
      const uint8_t* qh = b + 128 + n * 32;
      const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192) + 2 * sub;
      for (int j = 0; j < 32; j++) {
        const int q = ((k < 2 ? ql[j] & 15 : ql[j] >> 4) | (((qh[j] >> (2 * k)) & 3) << 4)) - 32;
        o[sub * 32 + j] = d * float(sc[j / 16]) * float(q);
      }
    }
  }
}

}  // namespace

void dequantRow(float* out, const uint8_t* w, int qtype, int64_t cols, int64_t row) {
  const QuantFormat& f = kQuantFormats[qtype];
  const int64_t nb = cols / f.block;
  const uint8_t* p = w + row * nb * f.bytes;
  for (int64_t b = 0; b < nb; b++) dequantBlock(out + b * f.block, p + b * f.bytes, qtype);
}

}  // namespace lk
