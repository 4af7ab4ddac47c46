// The kernels, compiled once per variant (see binding.gyp): LK_VARIANT names the namespace and
// the target flags pick the vector width. All loops are over caller-given sub-ranges so the addon
// layer can spread them over its thread pool. This file holds the row-wise operations, the KV
// cache's writes, the choice among attention kernels and the variant's kernel table; the products
// (matmul_float.h), decode attention (decode_attention*.h, kv_int8.h) and prompt attention
// (attention_tile*.h) are headers it includes inside the variant's namespace.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "line_vector.h"
#include "amx_bf16.h"
#include "bf16_dot.h"
#include "kernel_table.h"
#include "kv_int8.h"
#include "simd.h"

#ifndef LK_VARIANT
#error "compile with -DLK_VARIANT=<portable|avx2|avx512|avx512bf16|amxbf16>"
#endif

namespace LK_VARIANT {

using lk::AttnArgs;
using lk::KvArgs;
using lk::MatmulArgs;
using lk::kTokenGroup;
using lk::tokenGroups;

#include "matmul_float.h"

// ---- row-wise ops ---------------------------------------------------------------------------------

template <int DT>
void embeddingRange(float* out, const void* table, int64_t dim, const int32_t* tokens, int64_t t0, int64_t t1) {
  const int64_t dv = dim / W * W;
  for (int64_t t = t0; t < t1; t++) {
    const int64_t base = int64_t(tokens[t]) * dim;
    float* o = out + t * dim;
    int64_t i = 0;
    for (; i < dv; i += W) storef(o + i, loadw<DT>(table, base + i));
    for (; i < dim; i++) o[i] = loadw1<DT>(table, base + i);
  }
}

void embedding(float* out, const void* table, int dtype, int64_t dim, const int32_t* tokens, int64_t t0,
               int64_t t1) {
  if (dtype == lk::kF32) embeddingRange<0>(out, table, dim, tokens, t0, t1);
  else if (dtype == lk::kF16) embeddingRange<1>(out, table, dim, tokens, t0, t1);
  else embeddingRange<2>(out, table, dim, tokens, t0, t1);
}

void rmsnorm(float* out, const float* x, const float* w, int64_t dim, float eps, int64_t t0, int64_t t1) {
  const int64_t dv = dim / W * W;
  for (int64_t t = t0; t < t1; t++) {
    const float* xr = x + t * dim;
    float* o = out + t * dim;
    vf acc = splat(0.0f);
    int64_t i = 0;
    for (; i < dv; i += W) {
      const vf v = loadf(xr + i);
      acc += v * v;
    }
    double ss = hsum(acc);
    for (; i < dim; i++) ss += double(xr[i]) * xr[i];
    const float inv = float(1.0 / std::sqrt(ss / double(dim) + double(eps)));
    for (i = 0; i < dv; i += W) storef(o + i, loadf(xr + i) * inv * loadf(w + i));
    for (; i < dim; i++) o[i] = xr[i] * inv * w[i];
  }
}

// Partial rotary embeddings (Phi-4-mini's): only the first rotaryDim dims of a head rotate, paired
// within them; the head's other dims pass through.
void rope(float* x, const int32_t* pos, int64_t nHeads, int64_t headDim, int64_t rotaryDim, const float* cosT,
          const float* sinT, int64_t t0, int64_t t1) {
  const int64_t half = rotaryDim / 2;
  const int64_t hv = half / W * W;
  for (int64_t t = t0; t < t1; t++) {
    const float* c = cosT + int64_t(pos[t]) * half;
    const float* s = sinT + int64_t(pos[t]) * half;
    for (int64_t h = 0; h < nHeads; h++) {
      float* a = x + (t * nHeads + h) * headDim;
      float* b = a + half;
      int64_t i = 0;
      for (; i < hv; i += W) {
        const vf av = loadf(a + i), bv = loadf(b + i), cv = loadf(c + i), sv = loadf(s + i);
        storef(a + i, av * cv - bv * sv);
        storef(b + i, bv * cv + av * sv);
      }
      for (; i < half; i++) {
        const float av = a[i], bv = b[i];
        a[i] = av * c[i] - bv * s[i];
        b[i] = bv * c[i] + av * s[i];
      }
    }
  }
}

#include "activation_kernels.h"  // siluMul, geluMul, softcap, swigluClamped
#include "sampling_kernels.h"    // the sampler's rows

void add(float* out, const float* a, const float* b, int64_t i0, int64_t i1) {
  int64_t i = i0;
  for (; i + W <= i1; i += W) storef(out + i, loadf(a + i) + loadf(b + i));
  for (; i < i1; i++) out[i] = a[i] + b[i];
}

// Softmax (or log-softmax) of scale * x over rows [r0, r1), scale > 0 (the sampler's temperature;
// 1 elsewhere, where the result is what it was without one).
void softmax(float* out, const float* x, int64_t dim, bool log, float scale, int64_t r0, int64_t r1) {
  const int64_t dv = dim / W * W;
  const vf sc = splat(scale);
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    vf mv = splat(-INFINITY);
    int64_t i = 0;
    for (; i < dv; i += W) mv = vmax(mv, loadf(xr + i));
    float m = dv ? hmax(mv) : -INFINITY;
    for (; i < dim; i++) m = std::max(m, xr[i]);
    vf sv = splat(0.0f);
    double sum = 0;
    if (log) {
      for (i = 0; i < dv; i += W) sv += vexp((loadf(xr + i) - m) * sc);
      for (; i < dim; i++) sum += std::exp((xr[i] - m) * scale);
      const float logZ = float(m * scale + std::log(sum + hsum(sv)));
      for (i = 0; i < dv; i += W) storef(o + i, loadf(xr + i) * sc - logZ);
      for (; i < dim; i++) o[i] = xr[i] * scale - logZ;
    } else {
      for (i = 0; i < dv; i += W) {
        const vf e = vexp((loadf(xr + i) - m) * sc);
        storef(o + i, e);
        sv += e;
      }
      for (; i < dim; i++) sum += (o[i] = std::exp((xr[i] - m) * scale));
      const float inv = float(1.0 / (sum + hsum(sv)));
      for (i = 0; i < dv; i += W) storef(o + i, loadf(o + i) * inv);
      for (; i < dim; i++) o[i] *= inv;
    }
  }
}

// ---- KV cache -------------------------------------------------------------------------------------

void kvWrite(const KvArgs& c, const float* k, const float* v, const int32_t* slots, int64_t t0, int64_t t1) {
  if (c.dtype == lk::kI8) return i8::kvWrite(c, k, v, slots, t0, t1);  // kv_int8.h
  const int64_t width = c.nKvHeads * c.headDim;
  for (int64_t t = t0; t < t1; t++) {
    const int64_t slot = slots[t];
    if (slot < 0) continue;  // padding token
    const int64_t block = slot / c.blockSize, off = slot % c.blockSize;
    for (int64_t h = 0; h < c.nKvHeads; h++) {
      const int64_t dst = ((block * c.nKvHeads + h) * c.blockSize + off) * c.headDim;
      const float* ks = k + t * width + h * c.headDim;
      const float* vs = v + t * width + h * c.headDim;
      if (c.dtype == lk::kF32) {
        std::memcpy(static_cast<float*>(c.k) + dst, ks, c.headDim * 4);
        std::memcpy(static_cast<float*>(c.v) + dst, vs, c.headDim * 4);
      } else {
        // Narrowed W lanes at a time (vector rounding, F16C where present), the tail one by one:
        // the scalar conversions cost tens of ns per element, a visible share of a decode step.
        uint16_t* kd = static_cast<uint16_t*>(c.k) + dst;
        uint16_t* vd = static_cast<uint16_t*>(c.v) + dst;
        const bool bf = c.dtype == lk::kBF16;
        int64_t i = 0;
        for (; i + W <= c.headDim; i += W) {
          if (bf) {
            store_bf16(kd + i, loadf(ks + i));
            store_bf16(vd + i, loadf(vs + i));
          } else {
            store_f16(kd + i, loadf(ks + i));
            store_f16(vd + i, loadf(vs + i));
          }
        }
        for (; i < c.headDim; i++) {
          kd[i] = bf ? f32_to_bf16(ks[i]) : f32_to_f16(ks[i]);
          vd[i] = bf ? f32_to_bf16(vs[i]) : f32_to_f16(vs[i]);
        }
      }
    }
  }
}

// ---- attention ------------------------------------------------------------------------------------

#include "decode_attention_step.h"
#include "decode_attention_fma.h"
#include "decode_attention_dot.h"  // the AVX-512-BF16 builds only

// Whether grouped-query attention on a bf16 cache multiplies through vdpbf16ps: the AVX-512-BF16
// build only. Not the amxbf16 build: the CPUs with AMX (Intel's) issue vdpbf16ps at half the FMA's
// rate of multiply-adds, and on an Emerald Rapids Xeon the widening kernel read a grouped-query
// cache faster (55-59% of the streaming read against 48-57%; the scores through AMX tiles, tried
// there, 36-44%: BENCHMARKS.md, "The amxbf16 variant on a Xeon").
#if defined(__AVX512BF16__) && !defined(LK_AMX)
constexpr bool kBf16DotAttention = true;
#else
constexpr bool kBf16DotAttention = false;
#endif

#include "attention_tile.h"
#include "attention_tile_fma.h"
#include "attention_tile_i8.h"
#if defined(__AVX512BF16__)
#include "attention_tile_dot.h"
#endif
#if defined(LK_AMX)
#include "attention_tile_amx.h"
#endif

// The tile instructions this build's prompt tiles run on (amx_bf16.h): the hardware's on the
// amxbf16 build (its software twin for the amxbf16-emulated table).
#if defined(LK_AMX)
using BuildTiles = HwTiles;
#else
struct BuildTiles {};
#endif

// A prompt run's tile (see AttentionRunner): on a bf16 cache with head_dim a multiple of 32, through
// AMX tiles on the amxbf16 build (attention_tile_amx.h: queries and probabilities rounded to bf16 as
// the vdpbf16ps tiles round them); through vdpbf16ps where decode attention on the same
// cache would take it (kBf16DotAttention, a bf16 cache, grouped queries, head_dim a multiple of 32:
// the same rounding of queries and probabilities); on an int8 cache through byte products
// (attention_tile_i8.h: vpdpbusd where the CPU has VNNI at the variant's width and AllowVnni, which
// the -novnni stand-ins deny, else vpmaddubsw); else through fp32 multiply-adds (an int8 cache's rows
// dequantized on the portable build).
template <bool AllowVnni, class Tiles = BuildTiles>
void attentionTileWith(const AttnArgs& a, int64_t t0, int64_t t1, int64_t kh) {
  const int dt = a.cache.dtype;
#if defined(LK_AMX)
  if (dt == lk::kBF16 && a.cache.headDim % 32 == 0) return AmxAttention<Tiles>::run(a, t0, t1, kh);
#endif
#if defined(__AVX512BF16__) && !defined(LK_AMX)
  if (dt == lk::kBF16 && a.nHeads / a.cache.nKvHeads >= 2 && a.cache.headDim % 32 == 0)
    return attentionTileDot(a, t0, t1, kh);
#endif
#if defined(LK_I8_TILES)
  if (dt == lk::kI8)
    return AllowVnni && i8TilesAvailable() ? attentionTileI8<true>(a, t0, t1, kh) : attentionTileI8<false>(a, t0, t1, kh);
#else
  if (dt == lk::kI8) return attentionTileFma<kTileInt8>(a, t0, t1, kh);  // no byte products: rows dequantized
#endif
  if (dt == lk::kF32) attentionTileFma<0>(a, t0, t1, kh);
  else if (dt == lk::kF16) attentionTileFma<1>(a, t0, t1, kh);
  else attentionTileFma<2>(a, t0, t1, kh);
}

#include "decode_attention.h"
#include "decode_append_key.h"

void merge(float* outA, float* lseA, const float* outB, const float* lseB, int64_t D, int64_t r0, int64_t r1) {
  const int64_t dv = D / W * W;
  for (int64_t r = r0; r < r1; r++) {
    const float la = lseA[r], lb = lseB[r];
    float* oa = outA + r * D;
    const float* ob = outB + r * D;
    if (lb == -INFINITY) continue;  // B saw no keys: A stands
    if (la == -INFINITY) {
      std::memcpy(oa, ob, D * 4);
      lseA[r] = lb;
      continue;
    }
    const float m = std::max(la, lb);
    const float wa = std::exp(la - m), wb = std::exp(lb - m);
    const float z = wa + wb;
    const float ca = wa / z, cb = wb / z;
    int64_t i = 0;
    for (; i < dv; i += W) storef(oa + i, loadf(oa + i) * ca + loadf(ob + i) * cb);
    for (; i < D; i++) oa[i] = oa[i] * ca + ob[i] * cb;
    lseA[r] = m + std::log(z);
  }
}

// n rounds of 10 independent FMA chains, W lanes each (20 * W flops a round): the arithmetic peak
// yardstick for benchmarks. Ten chains cover the FMA latency (4-5 cycles) on two FMA ports. The
// sum is returned so the loop cannot be dropped.
double fmaLoop(int64_t n) {
  vf c[10];
  for (int i = 0; i < 10; i++) c[i] = splat(1.0f + 1e-3f * float(i));
  const vf m = splat(0.999999f), b = splat(1e-7f);
  for (int64_t r = 0; r < n; r++)
    for (int i = 0; i < 10; i++) c[i] = c[i] * m + b;
  vf s = c[0];
  for (int i = 1; i < 10; i++) s += c[i];
  return hsum(s);
}

// Reads [i0, i1) as four concurrent streams (one per quarter): several streams keep more
// cache-line requests in flight than one, as a matvec over several weight rows does.
double streamSum(const float* x, int64_t i0, int64_t i1) {
  const int64_t q = (i1 - i0) / (4 * W) * W;  // elements per quarter, a multiple of W
  const float* p0 = x + i0;
  const float* p1 = p0 + q;
  const float* p2 = p1 + q;
  const float* p3 = p2 + q;
  vf a0 = splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i < q; i += W) {
    a0 += loadf(p0 + i);
    a1 += loadf(p1 + i);
    a2 += loadf(p2 + i);
    a3 += loadf(p3 + i);
  }
  double s = hsum((a0 + a1) + (a2 + a3));
  for (int64_t i = i0 + 4 * q; i < i1; i++) s += x[i];
  return s;
}

}  // namespace LK_VARIANT

namespace lk {

#define LK_CAT2(a, b) a##b
#define LK_CAT(a, b) LK_CAT2(a, b)
#define LK_STR2(a) #a
#define LK_STR(a) LK_STR2(a)

const KernelTable* LK_CAT(table_, LK_VARIANT)() {
  static const KernelTable table = {
      LK_STR(LK_VARIANT),     LK_VARIANT::W,         LK_VARIANT::matmul, LK_VARIANT::packTokens,
      LK_VARIANT::embedding,  LK_VARIANT::rmsnorm,   LK_VARIANT::rope,   LK_VARIANT::siluMul,
      LK_VARIANT::add,        LK_VARIANT::softmax,   LK_VARIANT::kvWrite, LK_VARIANT::attention,
      LK_VARIANT::attentionTileWith<true>,
      LK_VARIANT::merge,      LK_VARIANT::streamSum, LK_VARIANT::fmaLoop,
#if defined(__AVX512BF16__)
      LK_VARIANT::dotLoop,    LK_VARIANT::kDotFlopsPerRound,
#else
      nullptr,                0.0,
#endif
      LK_VARIANT::i8::attentionPath<true>, LK_VARIANT::kBf16DotAttention,
#if defined(LK_AMX)
      LK_VARIANT::tileLoop<LK_VARIANT::HwTiles>, LK_VARIANT::kTileFlopsPerRound,
#else
      nullptr,                0.0,
#endif
      LK_VARIANT::geluMul,    LK_VARIANT::softcap,   LK_VARIANT::swigluClamped,
#if defined(LK_I8_TILES)
      LK_VARIANT::i8TilesAvailable() ? LK_VARIANT::byteDotLoop<true> : LK_VARIANT::byteDotLoop<false>,
      LK_VARIANT::kByteDotOpsPerRound,
#else
      nullptr,                0.0,
#endif
      LK_VARIANT::attentionLoads, LK_VARIANT::appendKey,
#if defined(LK_AMX)
      LK_VARIANT::kAmxFromTokens,
#else
      lk::kSmallBatch + 1,
#endif
      LK_VARIANT::argmax, LK_VARIANT::drawIndex, LK_VARIANT::topK,
      LK_VARIANT::nucleusCandidates,
  };
  return &table;
}

#if defined(LK_I8_YMM) || defined(LK_I8_ZMM)
// The variant as it runs on a CPU without VNNI (int8 attention through vpmaddubsw: kv_int8_ymm.h,
// kv_int8_zmm.h), for tests and benchmarks on CPUs that have it (avx2-novnni, avx512-novnni).
const KernelTable* LK_CAT(LK_CAT(table_, LK_VARIANT), _novnni)() {
  static const KernelTable table = [] {
    KernelTable t = *LK_CAT(table_, LK_VARIANT)();
    t.name = LK_STR(LK_VARIANT) "-novnni";
    t.attention = LK_VARIANT::attentionWith<false>;
    t.int8Attention = LK_VARIANT::i8::attentionPath<false>;
    t.attentionTile = LK_VARIANT::attentionTileWith<false>;
    t.byteDotLoop = LK_VARIANT::byteDotLoop<false>;
    return t;
  }();
  return &table;
}
#endif

#if defined(LK_AMX)
const KernelTable* table_amxbf16_emulated() {
  static const KernelTable table = [] {
    KernelTable t = *table_amxbf16();
    t.name = "amxbf16-emulated";
    t.matmul = LK_VARIANT::matmulEmulated;
    t.tileLoop = LK_VARIANT::tileLoop<LK_VARIANT::EmuTiles>;
    t.attentionTile = LK_VARIANT::attentionTileWith<true, LK_VARIANT::EmuTiles>;
    return t;
  }();
  return &table;
}
#endif

}  // namespace lk
