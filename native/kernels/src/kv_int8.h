// The int8 KV cache (included by kernels.cpp, so compiled into every variant): kvWrite quantizes
// each (token, KV head) row symmetrically (scale = absmax / 127, round half to even), and attention
// reads the int8 rows directly: scores are scale * kScale[j] * (q . k_j), and the values pass folds
// vScale[j] into the probability, so no dequantized copy of a row exists anywhere.
//
// Layout (block-major, like the float caches): a block's tokens in groups of kI8Group (4); group
// (block, h, off / 4) takes the 4 * D bytes from where its first token's row would start,
// ((block * nKv + h) * bs + off / 4 * 4) * D, in K and in V.
//   K  by quads of elements: elements 4c..4c+3 of the group's four tokens lie together, token by
//      token, at 16c + 4 * (off % 4) (a last quad of w < 4 elements: at 16c + w * (off % 4)). A
//      32-bit lane of an integer dot product then sums four elements of one key, and a 64-byte
//      vector holds 16 elements of four keys: scores come out key by key, no reduction per key.
//   V  element d of the four tokens at d * 4 + off % 4. One 32-bit lane of an integer dot
//      product then sums four keys' contributions to one element, and the widening path keeps its
//      accumulator in the same (element, key) order, reduced over the four keys once per task.
//   kScale / vScale  one f32 per row at (block * nKv + h) * bs + off.
// Lanes of a group outside a task's key range get probability 0: whatever their bytes hold (int8
// has no NaN), they add nothing.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "line_vector.h"
#include "kernel_table.h"
#include "read_ahead.h"
#include "simd.h"

namespace LK_VARIANT {
namespace i8 {

using lk::kI8Group;

typedef int8_t vb __attribute__((vector_size(W)));

// W int8s widened to W floats (sign-extending loads: GCC lowers the generic conversion of a byte
// vector to one scalar conversion per lane, which made this path 3x slower).
inline vf loadI8(const int8_t* p) {
#if defined(__AVX512F__)
  return (vf)_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#elif defined(__AVX2__)
  return (vf)_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
#elif defined(__SSE2__)
  int32_t word;
  std::memcpy(&word, p, 4);
  const __m128i b = _mm_cvtsi32_si128(word);
  // Each byte to the top of its 32-bit lane, then an arithmetic shift back: sign extension.
  const __m128i x = _mm_unpacklo_epi16(_mm_unpacklo_epi8(b, b), _mm_unpacklo_epi8(b, b));
  return (vf)_mm_cvtepi32_ps(_mm_srai_epi32(x, 24));
#else
  vb b;
  std::memcpy(&b, p, sizeof b);
  return __builtin_convertvector(b, vf);
#endif
}

// Quantizes x[0, D) to dst[at(i)]; returns the row's scale (0 for a zero row).
template <typename At>
inline float quantizeRow(int8_t* dst, At at, const float* x, int64_t D) {
  float amax = 0.0f;
  for (int64_t i = 0; i < D; i++) amax = std::max(amax, std::fabs(x[i]));
  const float inv = amax > 0 ? 127.0f / amax : 0.0f;
  for (int64_t i = 0; i < D; i++) {
    const float r = std::nearbyint(x[i] * inv);  // ties to even, the default rounding mode
    dst[at(i)] = int8_t(std::min(127.0f, std::max(-127.0f, r)));
  }
  return amax / 127.0f;
}

// Where K element d of the group's token `lane` lies, from the group's first byte.
inline int64_t keyAt(int64_t D, int64_t lane, int64_t d) {
  const int64_t quad = d & ~int64_t(3);
  return quad * kI8Group + lane * std::min<int64_t>(4, D - quad) + (d & 3);
}

inline void kvWrite(const lk::KvArgs& c, const float* k, const float* v, const int32_t* slots, int64_t t0,
                    int64_t t1) {
  const int64_t D = c.headDim, width = c.nKvHeads * D;
  int8_t* k8 = static_cast<int8_t*>(c.k);
  int8_t* v8 = static_cast<int8_t*>(c.v);
  for (int64_t t = t0; t < t1; t++) {
    const int64_t slot = slots[t];
    if (slot < 0) continue;  // padding token
    const int64_t block = slot / c.blockSize, off = slot % c.blockSize, lane = off % kI8Group;
    for (int64_t h = 0; h < c.nKvHeads; h++) {
      const int64_t row = (block * c.nKvHeads + h) * c.blockSize + off, group = (row - lane) * D;
      c.kScale[row] = quantizeRow(k8 + group, [&](int64_t i) { return keyAt(D, lane, i); }, k + t * width + h * D, D);
      c.vScale[row] = quantizeRow(v8 + group, [&](int64_t i) { return i * kI8Group + lane; }, v + t * width + h * D, D);
    }
  }
}

// ---- Prompt tiles on the portable build (attention_tile_fma.h): a step's keys dequantized --------
//
// The builds with byte products run an int8 cache's prompt tiles in bytes (attention_tile_i8.h);
// the portable build has none, and its fp32 tiles take K and V dequantized (code x scale) once per
// step, with their queries unrounded.

// A 64-byte chunk of a group (16 elements of its four keys) rearranged key by key: key j's 16
// bytes, in element order, at out + 16 j. K chunks hold quad q of the four keys in bytes 16q..16q+15
// (one 4-byte quad a key); V chunks hold element e of the four keys in bytes 4e..4e+3.
inline void chunkByKey(const int8_t* chunk, bool values, int8_t* out) {
  for (int j = 0; j < 4; j++)
    for (int e = 0; e < 16; e++) out[16 * j + e] = values ? chunk[4 * e + j] : chunk[16 * (e / 4) + 4 * j + e % 4];
}

// Keys [k0, k0 + nk) of KV head kh (k0 and nk multiples of kI8Group) dequantized into fp32 rows,
// K (or V where `values`) at dst[j * D]; rows of keys outside [lo, hi) are zeros (their block-table
// entries may be stale). head_dim a multiple of 16 (tileFits).
inline void tileDequant(const lk::KvArgs& c, const int32_t* table, int64_t k0, int64_t nk, int64_t lo, int64_t hi,
                        int64_t kh, bool values, float* dst) {
  const int64_t D = c.headDim, bs = c.blockSize, nKv = c.nKvHeads;
  const int8_t* codes = static_cast<const int8_t*>(values ? c.v : c.k);
  const float* scales = values ? c.vScale : c.kScale;
  alignas(64) int8_t byKey[64];
  for (int64_t j0 = 0; j0 < nk; j0 += kI8Group) {
    const int64_t p0 = k0 + j0;
    if (p0 + kI8Group <= lo || p0 >= hi) {
      std::fill(dst + j0 * D, dst + (j0 + kI8Group) * D, 0.0f);
      continue;
    }
    const int64_t row = (int64_t(table[p0 / bs]) * nKv + kh) * bs + p0 % bs;  // the group's first token
    vf scale[kI8Group];
    for (int j = 0; j < kI8Group; j++) scale[j] = splat(p0 + j >= lo && p0 + j < hi ? scales[row + j] : 0.0f);
    for (int64_t d = 0; d < D; d += 16) {
      chunkByKey(codes + row * D + 4 * d, values, byKey);
      for (int j = 0; j < kI8Group; j++)
        for (int e = 0; e < 16; e += W) storef(dst + (j0 + j) * D + d + e, loadI8(byKey + 16 * j + e) * scale[j]);
    }
  }
}

// Keys per online-softmax step, in groups of kI8Group (a multiple of 16: whole score tiles).
constexpr int64_t kStepKeys = 128;
constexpr int64_t kStepGroups = kStepKeys / kI8Group;

// One step: its groups, each the row of its first token for KV head 0 (head h adds h * bs) and the
// lanes [lo, hi) inside the task's key range.
struct Step {
  int64_t n;
  int64_t row[kStepGroups];
  int lo[kStepGroups], hi[kStepGroups];
  bool blockStart[kStepGroups];  // the group is its block's first
};

struct Scratch {
  lk::LineVector<float> qRep;  // [H, D / 4, W] each query quad repeated across a vector
  lk::LineVector<float> acc;   // [H, 4 * D] numerators, (element, key lane) order
  lk::LineVector<float> p;    // [H, kStepKeys] scores, then probabilities
  lk::LineVector<float> w;    // [H, kStepGroups, W] each group's folded probabilities, repeated across a vector
  std::vector<float> m, l;
};

inline Scratch& scratch(int64_t H, int64_t D) {
  thread_local Scratch s;
  if (int64_t(s.qRep.size()) < H * D / 4 * W) s.qRep.resize(size_t(H * D / 4 * W));
  if (int64_t(s.acc.size()) < H * 4 * D) s.acc.resize(size_t(H * 4 * D));
  if (int64_t(s.p.size()) < H * kStepKeys) s.p.resize(size_t(H * kStepKeys));
  if (int64_t(s.w.size()) < H * kStepGroups * W) s.w.resize(size_t(H * kStepGroups * W));
  if (int64_t(s.m.size()) < H) {
    s.m.resize(size_t(H));
    s.l.resize(size_t(H));
  }
  return s;
}

// Reorders the step's groups across its runs (groups in a row of one block): the i-th of every
// run, then the (i+1)-th, so each stretch of groups reads from all the step's blocks at once.
// Several sequential streams keep more lines in flight than one, as in the float kernels.
inline void interleaveRuns(Step& st) {
  int64_t start[kStepGroups], len[kStepGroups], nRuns = 0;
  for (int64_t gi = 0; gi < st.n; gi++) {
    if (gi > 0 && st.row[gi] == st.row[gi - 1] + kI8Group) {
      len[nRuns - 1]++;
      continue;
    }
    start[nRuns] = gi;
    len[nRuns++] = 1;
  }
  if (nRuns < 2) return;
  const Step in = st;
  int64_t n = 0;
  for (int64_t i = 0; n < in.n; i++)
    for (int64_t r = 0; r < nRuns; r++) {
      if (i >= len[r]) continue;
      const int64_t gi = start[r] + i;
      st.row[n] = in.row[gi];
      st.lo[n] = in.lo[gi];
      st.blockStart[n] = in.blockStart[gi];
      st.hi[n++] = in.hi[gi];
    }
}

// Groups from position p on, until the step is full or the range ends; returns the next position.
// The block and the offset in it advance with p (a block is whole groups): one division a step,
// where one per group (two with the prefetch's test) cost 9% of a one-head call.
inline int64_t gather(const lk::AttnArgs& a, const int32_t* table, int64_t p, int64_t p1, Step& st) {
  const int64_t bs = a.cache.blockSize, nKv = a.cache.nKvHeads;
  st.n = 0;
  int64_t blk = p / bs, off = p % bs;
  while (p < p1 && st.n < kStepGroups) {
    const int64_t lo = off % kI8Group, first = p - lo;
    st.row[st.n] = int64_t(table[blk]) * nKv * bs + (off - lo);
    st.lo[st.n] = int(lo);
    st.hi[st.n] = int(std::min<int64_t>(kI8Group, p1 - first));
    st.blockStart[st.n] = off == lo;
    st.n++;
    p = first + kI8Group;
    off += kI8Group - lo;
    if (off == bs) {
      off = 0;
      blk++;
    }
  }
  interleaveRuns(st);
  return p;
}

// Scores of GB query heads against the step's keys of one KV head (rows offset by `headRow`):
// p[g * kStepKeys + 4 * group + lane], -inf outside the range. A group's K quads are 16 bytes (4
// keys x 4 elements), widened W at a time and multiplied by the query's quad repeated across a
// vector (qRep: [GB, D / 4, W]); each key's four partial sums are added at the end.
template <int GB>
inline void scores(const lk::AttnArgs& a, const float* q, const float* qRep, const Step& st, int64_t headRow,
                   float* p) {
  constexpr int NV = 16 / W;  // vectors a quad of four keys takes
  const int64_t D = a.cache.headDim, nq = D / 4, r = D % 4;
  const int8_t* k8 = static_cast<const int8_t*>(a.cache.k);
  for (int64_t gi = 0; gi < st.n; gi++) {
    const int8_t* kg = k8 + (st.row[gi] + headRow) * D;
    vf acc[GB][NV];
    for (int g = 0; g < GB; g++)
      for (int v = 0; v < NV; v++) acc[g][v] = splat(0.0f);
    for (int64_t c = 0; c < nq; c++) {
      vf kv[NV];
      for (int v = 0; v < NV; v++) kv[v] = loadI8(kg + 16 * c + v * W);
      for (int g = 0; g < GB; g++) {
        const vf qv = loadf(qRep + (g * nq + c) * W);
        for (int v = 0; v < NV; v++) acc[g][v] += qv * kv[v];
      }
    }
    for (int g = 0; g < GB; g++) {
      alignas(64) float part[16];  // key lane j's partial sums at 4j..4j+3
      for (int v = 0; v < NV; v++) storef(part + v * W, acc[g][v]);
      for (int lane = 0; lane < kI8Group; lane++) {
        const int64_t j = gi * kI8Group + lane;
        if (lane < st.lo[gi] || lane >= st.hi[gi]) {
          p[g * kStepKeys + j] = -INFINITY;
          continue;
        }
        float sum = (part[4 * lane] + part[4 * lane + 1]) + (part[4 * lane + 2] + part[4 * lane + 3]);
        for (int64_t e = 0; e < r; e++) sum += q[g * D + 4 * nq + e] * float(kg[16 * nq + lane * r + e]);
        p[g * kStepKeys + j] = sum * a.scale * a.cache.kScale[st.row[gi] + headRow + lane];
      }
    }
  }
}

// acc[g] (4 * D, element-key order) += the step's V groups of one KV head weighted by w (each
// group's four folded probabilities repeated across a vector), GB heads and NC vectors of columns
// held in registers over the step's groups.
template <int GB, int NC>
inline void valueCols(float* acc, int64_t D4, int64_t i, const int8_t* vBase, const Step& st, const float* w) {
  vf o[GB][NC];
  for (int g = 0; g < GB; g++)
    for (int c = 0; c < NC; c++) o[g][c] = loadf(acc + g * D4 + i + c * W);
  for (int64_t gi = 0; gi < st.n; gi++) {
    const int8_t* vg = vBase + st.row[gi] * (D4 / kI8Group) + i;
    vf v[NC];
    for (int c = 0; c < NC; c++) v[c] = loadI8(vg + c * W);
    for (int g = 0; g < GB; g++) {
      const vf wg = loadf(w + (g * kStepGroups + gi) * W);
      for (int c = 0; c < NC; c++) o[g][c] += wg * v[c];
    }
  }
  for (int g = 0; g < GB; g++)
    for (int c = 0; c < NC; c++) storef(acc + g * D4 + i + c * W, o[g][c]);
}

template <int GB>
inline void values(float* acc, int64_t D, const int8_t* vBase, const Step& st, const float* w) {
  const int64_t D4 = D * kI8Group, dv = D4 / W * W;
  constexpr int NC = GB >= 4 ? 2 : 4;
  int64_t i = 0;
  for (; i + NC * W <= dv; i += NC * W) valueCols<GB, NC>(acc, D4, i, vBase, st, w);
  for (; i < dv; i += W) valueCols<GB, 1>(acc, D4, i, vBase, st, w);
  for (; i < D4; i++) {  // odd head_dim: the elements past the last whole vector
    const int lane = int(i % kI8Group);
    for (int64_t gi = 0; gi < st.n; gi++) {
      const float vv = float(vBase[st.row[gi] * D + i]);
      for (int g = 0; g < GB; g++) acc[g * D4 + i] += w[(g * kStepGroups + gi) * W + lane] * vv;
    }
  }
}

// Heads [0, n) in tiles of 4, 2 and 1.
template <typename F4, typename F2, typename F1>
inline void headTiles(int64_t n, F4 f4, F2 f2, F1 f1) {
  int64_t g = 0;
  for (; g + 4 <= n; g += 4) f4(g);
  for (; g + 2 <= n; g += 2) f2(g);
  for (; g < n; g++) f1(g);
}

// One step's online-softmax update of head g's row of scores (n keys, -inf where out of range):
// rescales its accumulator and returns the probabilities in place (0 from n to kStepKeys).
inline void softmaxStep(Scratch& s, int64_t g, float* row, int64_t n, float softcap, int64_t D4) {
  if (softcap > 0) softcapScores(row, n, softcap);  // Gemma 2
  vf mv = splat(-INFINITY);
  for (int64_t j = 0; j < kStepKeys; j += W) mv = vmax(mv, scoresVector(row, j, n));
  const float mNew = std::max(s.m[g], hmax(mv));
  const float corr = std::exp(s.m[g] - mNew);  // 0 on the first step (m = -inf)
  if (corr != 1.0f) {
    float* ag = s.acc.data() + g * D4;
    for (int64_t i = 0; i < D4; i++) ag[i] *= corr;
  }
  vf lv = splat(0.0f);
  for (int64_t j = 0; j < kStepKeys; j += W) {  // lanes from n on: exp(-inf) = 0
    const vf e = vexpNonPositive(scoresVector(row, j, n) - mNew);
    storef(row + j, e);
    lv += e;
  }
  s.l[g] = s.l[g] * corr + hsum(lv);
  s.m[g] = mNew;
}

// One query token against KV heads [h0, h1) over keys [p0, p1) (the KernelTable::attention
// contract), widening int8 to fp32: the path of variants without integer dot products.
inline void attentionWiden(const lk::AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1, float* out,
                      float* lse) {
  const lk::KvArgs& c = a.cache;
  const int64_t D = c.headDim, D4 = D * kI8Group, bs = c.blockSize, nKv = c.nKvHeads;
  const int64_t G = a.nHeads / nKv, H = (h1 - h0) * G;
  Scratch& s = scratch(H, D);
  std::fill(s.acc.begin(), s.acc.begin() + H * D4, 0.0f);
  std::fill(s.m.begin(), s.m.begin() + H, -INFINITY);
  std::fill(s.l.begin(), s.l.begin() + H, 0.0f);
  const float* q = a.q + (t * a.nHeads + h0 * G) * D;  // the task's query heads are contiguous
  const int64_t nq = D / 4;
  for (int64_t g = 0; g < H; g++)
    for (int64_t c = 0; c < nq; c++)
      for (int l = 0; l < W; l++) s.qRep[size_t((g * nq + c) * W + l)] = q[g * D + 4 * c + l % 4];
  const int32_t* table = a.blockTables + int64_t(a.qSeq[t]) * a.maxBlocksPerSeq;
  const int8_t* v8 = static_cast<const int8_t*>(c.v);
  Step st;
  for (int64_t p = gather(a, table, p0, p1, st); st.n > 0; p = gather(a, table, p, p1, st)) {
    const int64_t n = st.n * kI8Group;
    for (int64_t kh = 0; kh < h1 - h0; kh++) {
      const int64_t headRow = (h0 + kh) * bs, g0 = kh * G;
      float* pk = s.p.data() + g0 * kStepKeys;
      const float* qk = q + g0 * D;
      const float* rk = s.qRep.data() + g0 * nq * W;
      headTiles(
          G, [&](int64_t g) { scores<4>(a, qk + g * D, rk + g * nq * W, st, headRow, pk + g * kStepKeys); },
          [&](int64_t g) { scores<2>(a, qk + g * D, rk + g * nq * W, st, headRow, pk + g * kStepKeys); },
          [&](int64_t g) { scores<1>(a, qk + g * D, rk + g * nq * W, st, headRow, pk + g * kStepKeys); });
      for (int64_t g = g0; g < g0 + G; g++) {
        float* row = s.p.data() + g * kStepKeys;
        softmaxStep(s, g, row, n, a.softcap, D4);
        // Fold each key's V scale into its probability, repeated across a vector for its group.
        for (int64_t gi = 0; gi < st.n; gi++) {
          float* wv = s.w.data() + (g * kStepGroups + gi) * W;
          for (int lane = 0; lane < kI8Group; lane++) {
            const bool in = lane >= st.lo[gi] && lane < st.hi[gi];  // a lane outside: its scale may be unset
            wv[lane] = in ? row[gi * kI8Group + lane] * c.vScale[st.row[gi] + headRow + lane] : 0.0f;
          }
          for (int r = kI8Group; r < W; r++) wv[r] = wv[r % kI8Group];
        }
      }
      const int8_t* vBase = v8 + headRow * D;
      float* ak = s.acc.data() + g0 * D4;
      const float* wk = s.w.data() + g0 * kStepGroups * W;
      headTiles(
          G, [&](int64_t g) { values<4>(ak + g * D4, D, vBase, st, wk + g * kStepGroups * W); },
          [&](int64_t g) { values<2>(ak + g * D4, D, vBase, st, wk + g * kStepGroups * W); },
          [&](int64_t g) { values<1>(ak + g * D4, D, vBase, st, wk + g * kStepGroups * W); });
    }
  }
  for (int64_t g = 0; g < H; g++) {
    const float l = s.l[g];
    const float inv = l > 0 ? 1.0f / l : 0.0f;
    const float* ag = s.acc.data() + g * D4;
    for (int64_t d = 0; d < D; d++)
      out[g * D + d] = ((ag[4 * d] + ag[4 * d + 1]) + (ag[4 * d + 2] + ag[4 * d + 3])) * inv;
    if (lse) lse[g] = l > 0 ? s.m[g] + std::log(l) : -INFINITY;
  }
}

}  // namespace i8
}  // namespace LK_VARIANT

#include "kv_int8_ymm.h"
#include "kv_int8_zmm.h"

namespace LK_VARIANT {
namespace i8 {

// Whether a cache of head size D takes this build's byte-product path: the zmm paths take whole
// quads of K elements (the last quad of an odd head is narrower), the ymm paths whole 32-byte halves
// of a group's 64-byte columns; other heads, and builds without either, widen.
inline bool dotPathTakes(int64_t D) {
#if defined(LK_I8_ZMM)
  return D % 4 == 0;
#elif defined(LK_I8_YMM)
  return D % 8 == 0;
#else
  (void)D;
  return false;
#endif
}

// The path for a cache of head size D on this CPU; AllowVnni false takes the path of a CPU without
// VNNI even where this one has it (the -novnni tables, for tests and benchmarks).
template <bool AllowVnni = true>
inline void attention(const lk::AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1, float* out,
                      float* lse) {
#if defined(LK_I8_ZMM)
  if (dotPathTakes(a.cache.headDim)) {
    if (AllowVnni && hasVnni()) attentionIntDot<Zmm<true>>(a, t, h0, h1, p0, p1, out, lse);
    else attentionIntDot<Zmm<false>>(a, t, h0, h1, p0, p1, out, lse);
    return;
  }
#elif defined(LK_I8_YMM)
  if (dotPathTakes(a.cache.headDim)) {
    if (AllowVnni && hasAvxVnni()) attentionIntDot<Ymm<true>>(a, t, h0, h1, p0, p1, out, lse);
    else attentionIntDot<Ymm<false>>(a, t, h0, h1, p0, p1, out, lse);
    return;
  }
#endif
  attentionWiden(a, t, h0, h1, p0, p1, out, lse);
}

// The dot-product paths' reads alone (attentionIntDot's LoadsOnly): whether this cache's head size
// takes such a path on this build, and if so the sum of the words read into *sum. The widening
// path has no loads-only twin.
inline bool attentionLoads(const lk::AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1,
                           uint64_t* sum) {
  if (!dotPathTakes(a.cache.headDim)) return false;
#if defined(LK_I8_ZMM)
  *sum = attentionIntDot<Zmm<false>, true>(a, t, h0, h1, p0, p1, nullptr, nullptr);
#elif defined(LK_I8_YMM)
  *sum = attentionIntDot<Ymm<false>, true>(a, t, h0, h1, p0, p1, nullptr, nullptr);
#else
  (void)t, (void)h0, (void)h1, (void)p0, (void)p1, (void)sum;
#endif
  return true;
}

// Which path int8 attention takes on this CPU for head sizes that allow it (others widen).
template <bool AllowVnni = true>
inline const char* attentionPath() {
#if defined(LK_I8_ZMM)
  return AllowVnni && hasVnni() ? "avx512vnni" : "maddubs";
#elif defined(LK_I8_YMM)
  return AllowVnni && hasAvxVnni() ? "avxvnni" : "maddubs";
#endif
  return "widen";
}

}  // namespace i8
}  // namespace LK_VARIANT
