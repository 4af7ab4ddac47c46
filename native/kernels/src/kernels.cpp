// The kernels, compiled once per variant (see binding.gyp): LK_VARIANT names the namespace and
// the target flags pick the vector width. All loops are over caller-given sub-ranges so the addon
// layer can spread them over its thread pool.
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

// ---- matmul -------------------------------------------------------------------------------------

// Register tile: R weight rows x T tokens of dot products, weights widened to fp32 in registers.
// The rows are r, r + rs, ..., r + (R - 1) * rs: the streaming paths take rows a quarter of their
// range apart (see matvecRange).
constexpr int kTileRows = 4;

// Ahead: the weight rows are asked for kWeightReadAheadBytes ahead (a.readAhead; read_ahead.h).
template <int DT, int R, int T, bool Ahead>
inline void matmulTile(const MatmulArgs& a, int64_t r, int64_t t, int64_t rs = 1) {
  const int64_t K = a.cols;
  const int64_t kv = K / W * W;
  vf acc[R][T];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < T; j++) acc[i][j] = splat(0.0f);
  const float* xs[T];
  for (int j = 0; j < T; j++) xs[j] = a.x + (t + j) * K;
  for (int64_t k = 0; k < kv; k += W) {
    vf xv[T];
    for (int j = 0; j < T; j++) xv[j] = loadf(xs[j] + k);
    for (int i = 0; i < R; i++) {
      const vf wv = loadw<DT>(a.w, (r + i * rs) * K + k);
      if constexpr (Ahead) {
        constexpr int64_t es = DT == 0 ? 4 : 2;
        weightReadAhead<W * es>(static_cast<const char*>(a.w) + ((r + i * rs) * K + k) * es, k * es);
      }
      for (int j = 0; j < T; j++) acc[i][j] += wv * xv[j];
    }
  }
  for (int i = 0; i < R; i++) {
    const int64_t row = r + i * rs;
    for (int j = 0; j < T; j++) {
      float s = hsum(acc[i][j]);
      for (int64_t k = kv; k < K; k++) s += loadw1<DT>(a.w, row * K + k) * xs[j][k];
      if (a.bias) s += a.bias[row];
      a.out[(t + j) * a.rows + row] = s;
    }
  }
}

// Rows [r0, r1) for one token (decode): each weight element read once from DRAM and used once.
// The range is read as four sequential streams, one per quarter of its rows, each tile taking the
// next row of every quarter: like the streaming read that measures the limit, four long streams
// keep more lines in flight than one, or than four adjacent rows (streams one row long, which the
// hardware prefetcher has to find anew for every tile). A/B on 2 threads: 8192x2048 bf16
// 1.9-2.2 -> 1.5-1.8 ms, 4096x4096 1.8 -> 1.2-1.4 ms, 49152x576 3.2-3.3 -> 2.3-2.5 ms.
template <int DT, bool Ahead>
void matvecRows(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const int64_t q = (r1 - r0) / kTileRows;
  for (int64_t i = 0; i < q; i++) matmulTile<DT, kTileRows, 1, Ahead>(a, r0 + i, 0, q);
  for (int64_t r = r0 + kTileRows * q; r < r1; r++) matmulTile<DT, 1, 1, Ahead>(a, r, 0);
}

template <int DT>
void matvecRange(const MatmulArgs& a, int64_t r0, int64_t r1) {
  a.readAhead ? matvecRows<DT, true>(a, r0, r1) : matvecRows<DT, false>(a, r0, r1);
}

// ---- batched matmul: outer-product register tiles over packed tokens ------------------------------

// A tile is kOuterRows weight rows x kOuterVecs vectors of tokens of running sums: per key, the
// tokens' activations (one k-row of the packed group) are loaded once and every row's weight is
// broadcast against them, so sums stay in registers for a whole K block and need no horizontal
// reduction. AVX2's 16 registers take 6 x 2 (12 sums, 2 activation vectors, 1 broadcast);
// AVX-512's 32 take 12 x 2.
constexpr int kOuterRows = W == 16 ? 12 : 6;
constexpr int kOuterVecs = 2;
// Keys per block: the group's activations for a block (128 x 32 floats, 16 KiB) stay in L1
// while every tile of the panel passes over them.
constexpr int64_t kOuterBlock = 128;
// Rows per panel: its sums (48 x 32 floats on AVX2) stay in L1 across the K blocks, and its
// weights (a block of 48 rows at a time) are prefetched two tiles ahead. Against the K-blocked
// dot-product tiles this replaced (4 rows x 3 tokens, partial sums reduced at the end), 2 threads,
// 4096x4096 from DRAM: batch 32 ~50% -> ~60% of the FMA peak, batch 128 ~50% -> 60-70%.
constexpr int64_t kPanelRows = 8 * kOuterRows;

// The weights the next tile will broadcast, widened to fp32 on the side of this tile's
// arithmetic: rows [r0, r1) of src (rows `stride` elements apart), `vecs` vectors each, into dst
// (rows kOuterBlock apart). Spread over the tile's keys, the loads overlap the arithmetic instead
// of stalling a separate conversion loop.
struct Stage {
  const void* src;
  int64_t stride;
  int64_t vecs;
  int r0, r1;
  float* dst;
};

// c[i][t] += sum over k < kc of w[i * ws + k] * xt[k * kTokenGroup + t], rows i < R, tokens
// t < V * W; c rows are kTokenGroup apart.
template <int DT, int R, int V>
inline void outerTile(const float* w, int64_t ws, const float* xt, int64_t kc, float* c, const Stage& st) {
  vf acc[R][V];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < V; j++) acc[i][j] = loadf(c + i * kTokenGroup + j * W);
  for (int64_t k8 = 0; k8 < kc; k8 += W) {
    if constexpr (DT != 0) {
      const int64_t step = k8 / W;
      if (step < st.vecs)
        for (int i = st.r0; i < st.r1; i++)
          storef(st.dst + i * kOuterBlock + k8, loadw<DT>(st.src, i * st.stride + k8));
    }
    const int64_t kEnd = std::min(kc, k8 + W);
    for (int64_t k = k8; k < kEnd; k++) {
      vf xv[V];
      for (int j = 0; j < V; j++) xv[j] = loadf(xt + k * kTokenGroup + j * W);
      for (int i = 0; i < R; i++) {
        const vf b = splat(w[i * ws + k]);
        for (int j = 0; j < V; j++) acc[i][j] += b * xv[j];
      }
    }
  }
  for (int i = 0; i < R; i++)
    for (int j = 0; j < V; j++) storef(c + i * kTokenGroup + j * W, acc[i][j]);
}

// outerTile for a run-time row count r <= R (the panel's last tile).
template <int DT, int V, int R = kOuterRows>
inline void outerTileRows(int r, const float* w, int64_t ws, const float* xt, int64_t kc, float* c, const Stage& st) {
  if constexpr (R > 1)
    if (r < R) return outerTileRows<DT, V, R - 1>(r, w, ws, xt, kc, c, st);
  outerTile<DT, R, V>(w, ws, xt, kc, c, st);
}

// Widens rows [i0, i1) of a stage's block (kc keys) in one go: the first tile of a panel, whose
// weights no earlier tile staged, and the K % W keys the vector steps leave.
template <int DT>
inline void stageRows(const Stage& st, int64_t kc, int i0, int i1, int64_t k0) {
  for (int i = i0; i < i1; i++) {
    float* d = st.dst + i * kOuterBlock;
    int64_t k = k0;
    for (; k + W <= kc; k += W) storef(d + k, loadw<DT>(st.src, i * st.stride + k));
    for (; k < kc; k++) d[k] = loadw1<DT>(st.src, i * st.stride + k);
  }
}

void packTokens(float* xt, const float* x, int64_t nTokens, int64_t K, int64_t g0, int64_t g1, int dtype) {
#if defined(__AVX512BF16__)
  if (dtype == lk::kBF16) return packPairs(xt, x, nTokens, K, g0, g1);
#else
  (void)dtype;
#endif
  constexpr int64_t kStep = 64;  // a 64 x 32 block of xt (8 KiB) is written while in L1
  for (int64_t g = g0; g < g1; g++) {
    const int64_t t0 = g * kTokenGroup, nt = std::min(kTokenGroup, nTokens - t0);
    float* dst = xt + g * K * kTokenGroup;
    for (int64_t k0 = 0; k0 < K; k0 += kStep) {
      const int64_t k1 = std::min(K, k0 + kStep);
      for (int64_t j = 0; j < nt; j++) {
        const float* src = x + (t0 + j) * K;
        for (int64_t k = k0; k < k1; k++) dst[k * kTokenGroup + j] = src[k];
      }
      for (int64_t j = nt; j < kTokenGroup; j++)  // the last group's missing tokens
        for (int64_t k = k0; k < k1; k++) dst[k * kTokenGroup + j] = 0.0f;
    }
  }
}

// Rows [r0, r1) for a batch over its packed groups. Panel by panel and group by group, the
// panel's sums start at zero and every (K block, row tile) pair adds into them in that order; a
// 16-bit tile broadcasts from fp32 weights the previous tile widened on the side (double-buffered),
// an f32 tile straight from W. The tile after next is prefetched: its rows are runs of a few
// hundred bytes, too short for the hardware prefetcher.
template <int DT>
void batchRange(const MatmulArgs& a, int64_t r0, int64_t r1) {
  constexpr int64_t es = DT == 0 ? 4 : 2;
  const int64_t K = a.cols;
  const char* wBytes = static_cast<const char*>(a.w);
  alignas(64) float sums[kPanelRows * kTokenGroup];
  alignas(64) float staged[2][kOuterRows * kOuterBlock];
  const int64_t nBlocks = (K + kOuterBlock - 1) / kOuterBlock;
  for (int64_t p0 = r0; p0 < r1; p0 += kPanelRows) {
    const int64_t p1 = std::min(r1, p0 + kPanelRows);
    const int64_t perBlock = (p1 - p0 + kOuterRows - 1) / kOuterRows, nTiles = perBlock * nBlocks;
    // Tile n of the panel: K block n / perBlock, rows from p0 + (n % perBlock) * kOuterRows.
    auto tileRow = [&](int64_t n) { return p0 + (n % perBlock) * kOuterRows; };
    auto tileK = [&](int64_t n) { return (n / perBlock) * kOuterBlock; };
    auto tileStage = [&](int64_t n) {
      const int64_t r = tileRow(n), k0 = tileK(n);
      return Stage{wBytes + (r * K + k0) * es, K, std::min(kOuterBlock, K - k0) / W, 0,
                   int(std::min<int64_t>(kOuterRows, p1 - r)), staged[n % 2]};
    };
    for (int64_t g = 0; g < tokenGroups(a.nTokens); g++) {
      const int64_t t0 = g * kTokenGroup, nt = std::min(kTokenGroup, a.nTokens - t0);
      const int64_t nv = (nt + W - 1) / W;
      const float* xg = a.xt + g * K * kTokenGroup;
      std::fill(sums, sums + (p1 - p0) * kTokenGroup, 0.0f);
      if constexpr (DT != 0) {
        const Stage first = tileStage(0);
        stageRows<DT>(first, std::min(kOuterBlock, K), first.r0, first.r1, 0);
      }
      for (int64_t n = 0; n < nTiles; n++) {
        const int64_t r = tileRow(n), k0 = tileK(n), kc = std::min(kOuterBlock, K - k0);
        const int rows = int(std::min<int64_t>(kOuterRows, p1 - r));
        if (n + 2 < nTiles) {  // one or three tiles ahead measured the same
          const int64_t pr = tileRow(n + 2), pk = tileK(n + 2);
          const int64_t bytes = std::min(kOuterBlock, K - pk) * es;
          for (int64_t i = 0; i < std::min<int64_t>(kOuterRows, p1 - pr); i++)
            for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(wBytes + ((pr + i) * K + pk) * es + o, 0, 3);
        }
        // The next tile's staging, its rows shared out among this tile's token vectors.
        Stage next{nullptr, 0, 0, 0, 0, nullptr};
        if (DT != 0 && n + 1 < nTiles) next = tileStage(n + 1);
        const float* w = DT == 0 ? reinterpret_cast<const float*>(wBytes) + r * K + k0 : staged[n % 2];
        const int64_t ws = DT == 0 ? K : kOuterBlock;
        float* c = sums + (r - p0) * kTokenGroup;
        const float* x = xg + k0 * kTokenGroup;
        const int64_t calls = (nv + kOuterVecs - 1) / kOuterVecs;
        for (int64_t ci = 0; ci < calls; ci++) {
          const int64_t v = ci * kOuterVecs;
          Stage part = next;
          part.r0 = int(next.r1 * ci / calls);
          part.r1 = int(next.r1 * (ci + 1) / calls);
          if (nv - v >= kOuterVecs) outerTileRows<DT, kOuterVecs>(rows, w, ws, x + v * W, kc, c + v * W, part);
          else outerTileRows<DT, 1>(rows, w, ws, x + v * W, kc, c + v * W, part);
        }
        if (DT != 0 && n + 1 < nTiles) {
          const int64_t nkc = std::min(kOuterBlock, K - tileK(n + 1));
          stageRows<DT>(next, nkc, 0, next.r1, nkc / W * W);  // keys past the last full vector
        }
      }
      // Token by token, so each writes one contiguous run of its output row: row by row, every
      // store went to a different token's row (for a wide matrix, a different page each), and
      // took 15% of a 49152-row product's time.
      for (int64_t j = 0; j < nt; j++) {
        float* o = a.out + (t0 + j) * a.rows;
        for (int64_t r = p0; r < p1; r++) o[r] = sums[(r - p0) * kTokenGroup + j] + (a.bias ? a.bias[r] : 0.0f);
      }
    }
  }
}

// Rows [r0, r1) for a small batch, where streaming the weights is most of the time: each 4-row
// tile is read whole along K, once from DRAM for the first few tokens and from cache for the
// rest, its rows a quarter of the range apart so the range is read as four long streams (as in
// matvecRange).
template <int DT, bool Ahead>
void smallBatchRows(const MatmulArgs& a, int64_t r0, int64_t r1) {
  // Only a tile's first pass over its rows reads them from memory (and asks ahead); the passes
  // for its other tokens find them in cache.
  auto tile = [&](auto rowsTag, auto tokensTag, int64_t r, int64_t t, int64_t rs) {
    constexpr int R = decltype(rowsTag)::value, T = decltype(tokensTag)::value;
    t == 0 ? matmulTile<DT, R, T, Ahead>(a, r, t, rs) : matmulTile<DT, R, T, false>(a, r, t, rs);
  };
  auto tiles = [&](auto rowsTag, int64_t r, int64_t rs) {
    int64_t t = 0;
    for (; t + 3 <= a.nTokens; t += 3) tile(rowsTag, std::integral_constant<int, 3>{}, r, t, rs);
    if (a.nTokens - t == 2) tile(rowsTag, std::integral_constant<int, 2>{}, r, t, rs);
    else if (a.nTokens - t == 1) tile(rowsTag, std::integral_constant<int, 1>{}, r, t, rs);
  };
  const int64_t q = (r1 - r0) / kTileRows;
  for (int64_t i = 0; i < q; i++) tiles(std::integral_constant<int, kTileRows>{}, r0 + i, q);
  for (int64_t r = r0 + kTileRows * q; r < r1; r++) tiles(std::integral_constant<int, 1>{}, r, 1);
}

template <int DT>
void smallBatchRange(const MatmulArgs& a, int64_t r0, int64_t r1) {
  a.readAhead ? smallBatchRows<DT, true>(a, r0, r1) : smallBatchRows<DT, false>(a, r0, r1);
}

// Rows [r0, r1): one token streams the rows (matvecRange), a small batch streams 4-row tiles
// (smallBatchRange), a larger one runs outer-product tiles over its packed groups (batchRange).
template <int DT>
void matmulRange(const MatmulArgs& a, int64_t r0, int64_t r1) {
  if (a.nTokens == 1) return matvecRange<DT>(a, r0, r1);
  // Without packed activations (a caller that skipped packTokens) the streaming tiles still give
  // the right answer for any batch, only slower.
  if (a.nTokens <= lk::kSmallBatch || a.xt == nullptr) return smallBatchRange<DT>(a, r0, r1);
  batchRange<DT>(a, r0, r1);
}

template <class Tiles>
void matmulWith(const MatmulArgs& a, int64_t r0, int64_t r1) {
#if defined(__AVX512BF16__)
  // bf16 weights through vdpbf16ps (bf16_dot.h, with its precision contract), batches through the
  // AMX tiles on the variant that has them (amx_bf16.h, the same contract).
  if (a.dtype == lk::kBF16) {
    if (a.nTokens <= lk::kSmallBatch || a.xt == nullptr) return dotStreamRange(a, r0, r1);
#if defined(LK_AMX)
    if (amxTakes(a)) return amxBatchRange<Tiles>(a, r0, r1);
#endif
    return dotBatchRange(a, r0, r1);
  }
#endif
  if (a.dtype == lk::kF32) matmulRange<0>(a, r0, r1);
  else if (a.dtype == lk::kF16) matmulRange<1>(a, r0, r1);
  else matmulRange<2>(a, r0, r1);
}

#if defined(LK_AMX)
void matmul(const MatmulArgs& a, int64_t r0, int64_t r1) { matmulWith<HwTiles>(a, r0, r1); }
void matmulEmulated(const MatmulArgs& a, int64_t r0, int64_t r1) { matmulWith<EmuTiles>(a, r0, r1); }
#else
void matmul(const MatmulArgs& a, int64_t r0, int64_t r1) { matmulWith<void>(a, r0, r1); }
#endif

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

void add(float* out, const float* a, const float* b, int64_t i0, int64_t i1) {
  int64_t i = i0;
  for (; i + W <= i1; i += W) storef(out + i, loadf(a + i) + loadf(b + i));
  for (; i < i1; i++) out[i] = a[i] + b[i];
}

void softmax(float* out, const float* x, int64_t dim, bool log, int64_t r0, int64_t r1) {
  const int64_t dv = dim / W * W;
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
      for (i = 0; i < dv; i += W) sv += vexp(loadf(xr + i) - m);
      for (; i < dim; i++) sum += std::exp(xr[i] - m);
      const float logZ = float(m + std::log(sum + hsum(sv)));
      for (i = 0; i < dv; i += W) storef(o + i, loadf(xr + i) - logZ);
      for (; i < dim; i++) o[i] = xr[i] - logZ;
    } else {
      for (i = 0; i < dv; i += W) {
        const vf e = vexp(loadf(xr + i) - m);
        storef(o + i, e);
        sv += e;
      }
      for (; i < dim; i++) sum += (o[i] = std::exp(xr[i] - m));
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

// The most keys one online-softmax step takes, and the row stride of the per-step score buffers; a
// multiple of every W.
constexpr int64_t kChunk = 512;
// Keys per step: kStepBlocks blocks, at least kMinStep keys and at most kChunk (stepKeys). A step
// reads its blocks at once, and each block's rows of the task's KV heads are one contiguous region.
// With blocks of 16, 128-key steps (8 blocks) took MHA on bf16 from 70-89% to 96-99% of the
// streaming read against 64-key steps on an AVX-512 EPYC (2 threads, alternating builds), and 256
// keys were slower. With 8 KV heads a block of 16 is only 32 KiB of K, and the plain read of that
// pattern alone reaches 64-83% of the streaming read; blocks of 64 in steps of 8 blocks (512 keys)
// read 73-91%, and GQA attention on blocks of 32 and 64 went from 46-57% to 66-77% (BENCHMARKS.md).
constexpr int64_t kStepBlocks = 8, kMinStep = 128;
inline int64_t stepKeys(int64_t blockSize) { return std::clamp(kStepBlocks * blockSize, kMinStep, kChunk); }
// Keys per kernel call within a step: the values kernel passes over its keys once per few columns,
// so their rows (4 KiB for head_dim 128 in bf16) have to stay in L1 between passes.
constexpr int64_t kSub = 16;

// One online-softmax step: up to stepKeys keys as contiguous runs, one per physical block. A run's
// rows for KV head h start at element base + h * headStride (all heads of a block are stored one
// after another, so one task's heads of one block are a single contiguous region).
struct Step {
  int64_t n, nRuns;
  int64_t base[kChunk], len[kChunk];
};

// A step of fewer than kStepBlocks runs (a context shorter than 8 blocks, or its last step) reads
// too few regions at once: with blocks of 64, a 128-key context is 2 runs, and decode attention
// took 1.2-1.7x the time it took on blocks of 16 (8 runs) with head_dim 128. Such a step's runs are
// cut into pieces of whole kSub keys, up to kStepBlocks in all, each a run of its own: the same
// regions read as more streams. A piece keeps at least a page (4 KiB) of each head's rows: pieces
// of 2 KiB (head_dim 64 in bf16) were slower than not cutting (1.3-1.5x), a stream the hardware
// prefetcher has to find again at every head. `rowBytes`: one key's row of one head.
inline void splitRuns(Step& st, int64_t rowElems, int64_t rowBytes) {
  if (st.nRuns == 0 || st.nRuns >= kStepBlocks) return;
  const int64_t per = kStepBlocks / st.nRuns;  // pieces each run may become
  const int64_t minPiece = std::max<int64_t>(kSub, (4096 / rowBytes + kSub - 1) / kSub * kSub);
  if (per < 2) return;
  int64_t base[kStepBlocks], len[kStepBlocks], n = 0;
  for (int64_t r = 0; r < st.nRuns; r++) {
    const int64_t pieces = std::max<int64_t>(1, std::min(per, st.len[r] / minPiece));
    const int64_t piece = (st.len[r] + pieces - 1) / pieces;
    const int64_t step = (piece + kSub - 1) / kSub * kSub;  // whole calls of kSub keys a piece
    for (int64_t o = 0; o < st.len[r]; o += step) {
      base[n] = st.base[r] + o * rowElems;
      len[n++] = std::min(step, st.len[r] - o);
    }
  }
  std::copy(base, base + n, st.base);
  std::copy(len, len + n, st.len);
  st.nRuns = n;
}

// Per task: the query heads of its KV heads.
struct AttnScratch {
  lk::LineVector<float> q;       // [H, headDim] queries, in the pair order of the KV dtype
  lk::LineVector<float> acc;     // [H, headDim] running numerator, same order
  lk::LineVector<float> scores;  // [H, kChunk]
  std::vector<float> m, l;    // [H] running max and denominator
  lk::LineVector<uint16_t> qb;   // [H, headDim] queries rounded to bf16, in order (bf16 dot products)
  lk::LineVector<uint16_t> pb;   // [H, kChunk] probabilities rounded to bf16 (bf16 dot products)
  lk::LineVector<uint16_t> qx;   // qb of each KV head's query heads in fours, in quadScoresTile's order
};

inline AttnScratch& attnScratch(int64_t H, int64_t D) {
  thread_local AttnScratch s;
  if (int64_t(s.acc.size()) < H * D) {
    s.acc.resize(H * D);
    s.q.resize(H * D);
    s.qb.resize(H * D);
    s.qx.resize(H * D);
  }
  if (int64_t(s.scores.size()) < H * kChunk) {
    s.scores.resize(H * kChunk);
    s.pb.resize(H * kChunk);
  }
  if (int64_t(s.m.size()) < H) {
    s.m.resize(H);
    s.l.resize(H);
  }
  return s;
}

// The in-order kernels below take any head_dim; the pair kernels after them need head_dim % 2W == 0
// (every real model) and are the fast path. All take a step's keys as a list of row offsets
// (rows[j] + off is key j's first element), in the order the step interleaves its blocks (see
// attentionPart).

// scores[g, j] = scale * q_g . K_j for GB query heads at once. Two keys per step: each q load
// serves both, and 2*GB independent FMA chains hide the FMA latency.
template <int DT, int GB>
inline void groupScores(const float* q, int64_t D, const void* kBase, const int64_t* rows, int64_t off, int64_t n,
                        float scale, float* scores) {
  const int64_t dv = D / W * W;
  int64_t j = 0;
  for (; j + 2 <= n; j += 2) {
    const int64_t k0 = rows[j] + off, k1 = rows[j + 1] + off;
    vf acc0[GB], acc1[GB];
    for (int g = 0; g < GB; g++) acc0[g] = acc1[g] = splat(0.0f);
    for (int64_t i = 0; i < dv; i += W) {
      const vf kv0 = loadw<DT>(kBase, k0 + i);
      const vf kv1 = loadw<DT>(kBase, k1 + i);
      for (int g = 0; g < GB; g++) {
        const vf qv = loadf(q + g * D + i);
        acc0[g] += qv * kv0;
        acc1[g] += qv * kv1;
      }
    }
    for (int g = 0; g < GB; g++) {
      float s0 = hsum(acc0[g]), s1 = hsum(acc1[g]);
      for (int64_t i = dv; i < D; i++) {
        s0 += q[g * D + i] * loadw1<DT>(kBase, k0 + i);
        s1 += q[g * D + i] * loadw1<DT>(kBase, k1 + i);
      }
      scores[g * kChunk + j] = s0 * scale;
      scores[g * kChunk + j + 1] = s1 * scale;
    }
  }
  for (; j < n; j++) {
    const int64_t kr = rows[j] + off;
    vf acc[GB];
    for (int g = 0; g < GB; g++) acc[g] = splat(0.0f);
    for (int64_t i = 0; i < dv; i += W) {
      const vf kv = loadw<DT>(kBase, kr + i);
      for (int g = 0; g < GB; g++) acc[g] += loadf(q + g * D + i) * kv;
    }
    for (int g = 0; g < GB; g++) {
      float s = hsum(acc[g]);
      for (int64_t i = dv; i < D; i++) s += q[g * D + i] * loadw1<DT>(kBase, kr + i);
      scores[g * kChunk + j] = s * scale;
    }
  }
}

// acc[g, :] += sum_j p[g, j] * V_j; even and odd keys go to separate registers so twice as many
// FMA chains run at once.
template <int DT, int GB>
inline void groupValues(float* acc, int64_t D, const void* vBase, const int64_t* rows, int64_t off, int64_t n,
                        const float* p) {
  const int64_t dv = D / W * W;
  for (int64_t i = 0; i < dv; i += W) {
    vf o[GB], e[GB];
    for (int g = 0; g < GB; g++) {
      o[g] = loadf(acc + g * D + i);
      e[g] = splat(0.0f);
    }
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
      const vf v0 = loadw<DT>(vBase, rows[j] + off + i);
      const vf v1 = loadw<DT>(vBase, rows[j + 1] + off + i);
      for (int g = 0; g < GB; g++) {
        o[g] += p[g * kChunk + j] * v0;
        e[g] += p[g * kChunk + j + 1] * v1;
      }
    }
    if (j < n) {
      const vf v0 = loadw<DT>(vBase, rows[j] + off + i);
      for (int g = 0; g < GB; g++) o[g] += p[g * kChunk + j] * v0;
    }
    for (int g = 0; g < GB; g++) storef(acc + g * D + i, o[g] + e[g]);
  }
  for (int64_t i = dv; i < D; i++)
    for (int64_t j = 0; j < n; j++) {
      const float vv = loadw1<DT>(vBase, rows[j] + off + i);
      for (int g = 0; g < GB; g++) acc[g * D + i] += p[g * kChunk + j] * vv;
    }
}

// Accumulators the values kernel keeps in registers: half the register file, leaving room for
// the V vectors and the broadcast probabilities.
constexpr int kValueAccs = W == 16 ? 16 : 8;

// The values micro-kernel: GB heads x NP column pairs of the accumulator held in registers over
// all n keys. Every accumulator gets one FMA per key, so there are 2 * GB * NP independent chains
// whatever GB is; each probability is broadcast once per NP pairs of V.
template <int DT, int GB, int NP>
inline void pairValuesCols(float* acc, int64_t D, int64_t i, const void* vBase, const int64_t* rows, int64_t off,
                           int64_t n, const float* p) {
  vf o[GB][2 * NP];
  for (int g = 0; g < GB; g++)
    for (int c = 0; c < 2 * NP; c++) o[g][c] = loadf(acc + g * D + i + c * W);
  for (int64_t j = 0; j < n; j++) {
    vf v[2 * NP];
    const int64_t row = rows[j] + off + i;
    for (int c = 0; c < NP; c++) loadPair<DT>(vBase, row + 2 * c * W, v[2 * c], v[2 * c + 1]);
    for (int g = 0; g < GB; g++) {
      const vf pg = splat(p[g * kChunk + j]);
      for (int c = 0; c < 2 * NP; c++) o[g][c] += pg * v[c];
    }
  }
  for (int g = 0; g < GB; g++)
    for (int c = 0; c < 2 * NP; c++) storef(acc + g * D + i + c * W, o[g][c]);
}

template <int DT, int GB>
inline void pairValues(float* acc, int64_t D, const void* vBase, const int64_t* rows, int64_t off, int64_t n,
                       const float* p) {
  constexpr int NP = kValueAccs / GB / 2 > 0 ? kValueAccs / GB / 2 : 1;
  int64_t i = 0;
  for (; i + 2 * NP * W <= D; i += 2 * NP * W) pairValuesCols<DT, GB, NP>(acc, D, i, vBase, rows, off, n, p);
  for (; i < D; i += 2 * W) pairValuesCols<DT, GB, 1>(acc, D, i, vBase, rows, off, n, p);
}

#if defined(__AVX512F__)
// The sums of 16 vectors as one vector, by a transposing tree of shuffles and adds (45 ops for 16
// sums instead of 16 separate horizontal sums): lane 4L+m holds the sum of v[4m+L].
inline vf reduceW(const vf* v) {
  __m512 s1[8];
  for (int p = 0; p < 8; p++) {
    const __m512 a = (__m512)v[2 * p], b = (__m512)v[2 * p + 1];
    s1[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xee));
  }
  __m512 s2[4];
  for (int p = 0; p < 4; p++) {
    const __m512 a = s1[2 * p], b = s1[2 * p + 1];
    s2[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xdd));
  }
  const __m512 t01 = _mm512_add_ps(_mm512_unpacklo_ps(s2[0], s2[1]), _mm512_unpackhi_ps(s2[0], s2[1]));
  const __m512 t23 = _mm512_add_ps(_mm512_unpacklo_ps(s2[2], s2[3]), _mm512_unpackhi_ps(s2[2], s2[3]));
  const __m512d a = _mm512_castps_pd(t01), b = _mm512_castps_pd(t23);
  return (vf)_mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
}
// Which accumulator feeds lane l of reduceW's result.
constexpr int tileAcc(int l) { return 4 * (l % 4) + l / 4; }
#elif defined(__AVX2__)
// The sums of 8 vectors as one vector, lane l holding the sum of v[l]: two rounds of horizontal
// adds leave each 128-bit half with four partial sums (low half from elements 0-3, high from
// 4-7), and one cross-lane permute plus add combines the halves (9 ops for 8 sums, where eight
// separate horizontal sums take about 40).
inline vf reduceW(const vf* v) {
  const __m256 h01 = _mm256_hadd_ps((__m256)v[0], (__m256)v[1]);
  const __m256 h23 = _mm256_hadd_ps((__m256)v[2], (__m256)v[3]);
  const __m256 h45 = _mm256_hadd_ps((__m256)v[4], (__m256)v[5]);
  const __m256 h67 = _mm256_hadd_ps((__m256)v[6], (__m256)v[7]);
  const __m256 a = _mm256_hadd_ps(h01, h23);  // [lo sums of v0..v3 | hi sums of v0..v3]
  const __m256 b = _mm256_hadd_ps(h45, h67);  // [lo sums of v4..v7 | hi sums of v4..v7]
  // [a.lo | b.lo] + [a.hi | b.hi]: the first from a blend, the second from one lane swap.
  return (vf)_mm256_add_ps(_mm256_blend_ps(a, b, 0xf0), _mm256_permute2f128_ps(a, b, 0x21));
}
constexpr int tileAcc(int l) { return l; }
#else
inline vf reduceW(const vf* v) {
  vf r;
  for (int l = 0; l < W; l++) r[l] = hsum(v[l]);
  return r;
}
constexpr int tileAcc(int l) { return l; }
#endif

// The scores micro-kernel: GB query heads x KB keys (GB * KB = W) as one small matrix product,
// W accumulators over head_dim, each K pair loaded (and widened) once for all GB heads, then one
// transposing reduction gives all W scores in a vector.
template <int DT, int GB, int KB>
inline void pairScoresTile(const float* q, int64_t D, const void* kBase, const int64_t* rows, int64_t off, float scale,
                           float* scores) {
  static_assert(GB * KB == W, "one tile fills one vector of scores");
  vf acc[W];
  for (int i = 0; i < W; i++) acc[i] = splat(0.0f);
  for (int64_t i = 0; i < D; i += 2 * W) {
    for (int j = 0; j < KB; j++) {
      vf ka, kb;
      loadPair<DT>(kBase, rows[j] + off + i, ka, kb);
      // Score (g, j) goes to lane g*KB + j of the reduced vector.
      // Two separate updates, so each is one FMA (a*b + c*d + acc would add a multiply).
      for (int g = 0; g < GB; g++) {
        acc[tileAcc(g * KB + j)] += loadf(q + g * D + i) * ka;
        acc[tileAcc(g * KB + j)] += loadf(q + g * D + i + W) * kb;
      }
    }
  }
  alignas(64) float r[W];
  storef(r, reduceW(acc) * scale);
  if constexpr (GB == 1) {
    storef(scores, loadf(r));
  } else {
    for (int g = 0; g < GB; g++)
      for (int j = 0; j < KB; j++) scores[g * kChunk + j] = r[g * KB + j];
  }
}

// Heads [0, GB) over keys [0, n): whole tiles, then the tail keys one at a time.
template <int DT, int GB>
inline void pairScores(const float* q, int64_t D, const void* kBase, const int64_t* rows, int64_t off, int64_t n,
                       float scale, float* scores) {
  constexpr int KB = W / GB;
  int64_t j = 0;
  for (; j + KB <= n; j += KB) pairScoresTile<DT, GB, KB>(q, D, kBase, rows + j, off, scale, scores + j);
  for (; j < n; j++) {
    for (int g = 0; g < GB; g++) {
      vf acc = splat(0.0f);
      for (int64_t i = 0; i < D; i += 2 * W) {
        vf ka, kb;
        loadPair<DT>(kBase, rows[j] + off + i, ka, kb);
        acc += loadf(q + g * D + i) * ka;
        acc += loadf(q + g * D + i + W) * kb;
      }
      scores[g * kChunk + j] = hsum(acc) * scale;
    }
  }
}

#include "attention_short_rows.h"

// All G query heads of one KV head over n keys. `pairs`: head_dim is a multiple of 2W, and q is in
// pair order; then heads go in groups of 2 (tiles of 2 heads x W/2 keys: q for both heads stays in
// registers, where 4-head tiles reload it from cache for every key pair and measured slower even
// though they widen each K row once per 4 heads instead of 2), else 4, 2 and 1.
template <int DT>
inline void scoresAll(bool pairs, const float* q, int64_t G, int64_t D, const void* kBase, const int64_t* rows,
                      int64_t off, int64_t n, float scale, float* scores) {
  if (shortRows(D)) return shortScores<DT>(q, G, D, kBase, rows, off, n, scale, scores);
  int64_t g = 0;
  if (pairs) {
    for (; g + 2 <= G; g += 2) pairScores<DT, 2>(q + g * D, D, kBase, rows, off, n, scale, scores + g * kChunk);
    for (; g < G; g++) pairScores<DT, 1>(q + g * D, D, kBase, rows, off, n, scale, scores + g * kChunk);
    return;
  }
  for (; g + 4 <= G; g += 4) groupScores<DT, 4>(q + g * D, D, kBase, rows, off, n, scale, scores + g * kChunk);
  for (; g + 2 <= G; g += 2) groupScores<DT, 2>(q + g * D, D, kBase, rows, off, n, scale, scores + g * kChunk);
  for (; g < G; g++) groupScores<DT, 1>(q + g * D, D, kBase, rows, off, n, scale, scores + g * kChunk);
}

template <int DT>
inline void valuesAll(bool pairs, float* acc, int64_t G, int64_t D, const void* vBase, const int64_t* rows,
                      int64_t off, int64_t n, const float* p) {
#if defined(__AVX512F__)
  if (D == 8) return shortValues8<DT>(acc, G, vBase, rows, off, n, p);  // rows of W take groupValues' vectors
#endif
  int64_t g = 0;
  if (pairs) {
    for (; g + 4 <= G; g += 4) pairValues<DT, 4>(acc + g * D, D, vBase, rows, off, n, p + g * kChunk);
    for (; g + 2 <= G; g += 2) pairValues<DT, 2>(acc + g * D, D, vBase, rows, off, n, p + g * kChunk);
    for (; g < G; g++) pairValues<DT, 1>(acc + g * D, D, vBase, rows, off, n, p + g * kChunk);
    return;
  }
  for (; g + 4 <= G; g += 4) groupValues<DT, 4>(acc + g * D, D, vBase, rows, off, n, p + g * kChunk);
  for (; g + 2 <= G; g += 2) groupValues<DT, 2>(acc + g * D, D, vBase, rows, off, n, p + g * kChunk);
  for (; g < G; g++) groupValues<DT, 1>(acc + g * D, D, vBase, rows, off, n, p + g * kChunk);
}

#if defined(__AVX512BF16__)
// ---- decode attention through vdpbf16ps (bf16 cache, head_dim a multiple of 32) ----
//
// Each vdpbf16ps does 32 multiply-adds of bf16 pairs into 16 fp32 sums, where the widening kernels
// spend two bit operations and two FMAs on the same 32 products. Scores multiply the queries,
// rounded to bf16 once per task, by the key rows as stored. Values take two keys at a time: a
// 16-bit unpack of the two rows gives (V[j][d], V[j+1][d]) pairs, multiplied by the broadcast pair
// (p[j], p[j+1]) of probabilities rounded to bf16; the accumulator is kept in the unpack's order
// (fromUnpackOrder restores it). The denominator sums the same rounded probabilities, so the
// output is still a weighted mean of the value rows.

// Scores tile: GB query heads x KB keys (GB * KB = 16), one transposing reduction at the end.
template <int GB, int KB>
inline void dpScoresTile(const uint16_t* qb, int64_t D, const uint16_t* k, const int64_t* rows, int64_t off,
                         float scale, float* scores) {
  static_assert(GB * KB == W, "one tile fills one vector of scores");
  vf acc[W];
  for (int i = 0; i < W; i++) acc[i] = splat(0.0f);
  for (int64_t i = 0; i < D; i += 32) {
    __m512bh qv[GB];
    for (int g = 0; g < GB; g++) qv[g] = (__m512bh)_mm512_loadu_si512(qb + g * D + i);
    for (int j = 0; j < KB; j++) {
      const __m512bh kv = (__m512bh)_mm512_loadu_si512(k + rows[j] + off + i);
      for (int g = 0; g < GB; g++) {
        vf& a = acc[tileAcc(g * KB + j)];
        a = (vf)_mm512_dpbf16_ps((__m512)a, qv[g], kv);
      }
    }
  }
  alignas(64) float r[W];
  storef(r, reduceW(acc) * scale);
  for (int g = 0; g < GB; g++)
    for (int j = 0; j < KB; j++) scores[g * kChunk + j] = r[g * KB + j];
}

template <int GB>
inline void dpScores(const uint16_t* qb, int64_t D, const uint16_t* k, const int64_t* rows, int64_t off, int64_t n,
                     float scale, float* scores) {
  constexpr int KB = W / GB;
  int64_t j = 0;
  for (; j + KB <= n; j += KB) dpScoresTile<GB, KB>(qb, D, k, rows + j, off, scale, scores + j);
  for (; j < n; j++)
    for (int g = 0; g < GB; g++) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t i = 0; i < D; i += 32)
        acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(qb + g * D + i),
                               (__m512bh)_mm512_loadu_si512(k + rows[j] + off + i));
      scores[g * kChunk + j] = _mm512_reduce_add_ps(acc) * scale;
    }
}

// Scores of 4 query heads x KB keys (KB a multiple of 4) with no horizontal sums. The queries are
// rearranged once per task (quadQueries): vector c holds dims [8c, 8c + 8) of the 4 heads, one head
// per 128-bit lane. Each key's dims [8c, 8c + 8) are broadcast to all four lanes straight from its
// row (a 16-byte broadcast load), so one vdpbf16ps leaves lane (g, p) with head g's products of the
// key's dim pair p: each key has one accumulator over the whole head_dim (KB independent chains),
// and a 4 x 4 transpose-add per 4 keys gives their 16 scores (6 ops, against 45 in reduceW for
// dpScoresTile's 16), stored as one 4-key run per head.
template <int KB>
inline void quadScoresTile(const uint16_t* qx, int64_t D, const uint16_t* k, const int64_t* rows, int64_t off,
                           float scale, float* scores) {
  static_assert(KB % 4 == 0, "keys in fours");
  __m512 acc[KB];
  const uint16_t* kr[KB];
  for (int j = 0; j < KB; j++) {
    acc[j] = _mm512_setzero_ps();
    kr[j] = k + rows[j] + off;
  }
  for (int64_t c = 0; c < D / 8; c++) {
    const __m512bh qv = (__m512bh)_mm512_loadu_si512(qx + c * 32);
    for (int j = 0; j < KB; j++) {
      const __m128i k8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kr[j] + c * 8));
      acc[j] = _mm512_dpbf16_ps(acc[j], qv, (__m512bh)_mm512_broadcast_i32x4(k8));
    }
  }
  const __m512 sv = _mm512_set1_ps(scale);
  for (int j = 0; j < KB; j += 4) {
    // In each 128-bit lane (one head), keys j..j+3: pair sums 0+1 and 2+3 side by side, then added.
    const __m512 t01 = _mm512_add_ps(_mm512_unpacklo_ps(acc[j], acc[j + 1]), _mm512_unpackhi_ps(acc[j], acc[j + 1]));
    const __m512 t23 =
        _mm512_add_ps(_mm512_unpacklo_ps(acc[j + 2], acc[j + 3]), _mm512_unpackhi_ps(acc[j + 2], acc[j + 3]));
    const __m512d a = _mm512_castps_pd(t01), b = _mm512_castps_pd(t23);
    const __m512 sum = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    const __m512 r = _mm512_mul_ps(sum, sv);  // lane 4g + i: head g, key j + i
    _mm_storeu_ps(scores + j, _mm512_extractf32x4_ps(r, 0));
    _mm_storeu_ps(scores + kChunk + j, _mm512_extractf32x4_ps(r, 1));
    _mm_storeu_ps(scores + 2 * kChunk + j, _mm512_extractf32x4_ps(r, 2));
    _mm_storeu_ps(scores + 3 * kChunk + j, _mm512_extractf32x4_ps(r, 3));
  }
}

// 4 heads' queries (qb: [4, D] in bf16) in quadScoresTile's order, [D / 8][4 heads][8 dims].
inline void quadQueries(uint16_t* qx, const uint16_t* qb, int64_t D) {
  for (int64_t c = 0; c < D / 8; c++)
    for (int g = 0; g < 4; g++) std::memcpy(qx + (c * 4 + g) * 8, qb + g * D + c * 8, 16);
}

// Scores of 4 query heads x 4 keys at a time with the heads' queries held in registers (head_dim
// C * 32, C <= 4: at most 16 vectors): each key's row is read as C full 64-byte loads, and each load
// feeds 4 vdpbf16ps (one a head) where quadScoresTile issues a 16-byte broadcast load per vdpbf16ps.
// The 16 accumulators go through one transposing tree of adds (shuffles of 256- and 128-bit halves,
// then unpacks), which leaves lane 4g + j with head g's score of key j. Against quadScores, on keys
// in L1 (head_dim 128): 2.9 against 4.0 ns a key and KV head.
template <int C>
inline void heldScores(const uint16_t* qb, const uint16_t* k, const int64_t* rows, int64_t off, int64_t n, float scale,
                       float* scores) {
  __m512bh q[4][C];
  for (int g = 0; g < 4; g++)
    for (int i = 0; i < C; i++) q[g][i] = (__m512bh)_mm512_loadu_si512(qb + g * C * 32 + 32 * i);
  const __m512 sv = _mm512_set1_ps(scale);
  for (int64_t j = 0; j + 4 <= n; j += 4) {
    __m512 acc[16];  // acc[4 * key + head]
    for (int a = 0; a < 16; a++) acc[a] = _mm512_setzero_ps();
    for (int i = 0; i < C; i++)
      for (int kk = 0; kk < 4; kk++) {
        const __m512bh kv = (__m512bh)_mm512_loadu_si512(k + rows[j + kk] + off + 32 * i);
        for (int g = 0; g < 4; g++) acc[4 * kk + g] = _mm512_dpbf16_ps(acc[4 * kk + g], q[g][i], kv);
      }
    __m512 t8[8], t4[4], t2[2];
    for (int a = 0; a < 8; a++)
      t8[a] = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2 * a], acc[2 * a + 1], 0x44),
                            _mm512_shuffle_f32x4(acc[2 * a], acc[2 * a + 1], 0xEE));
    for (int a = 0; a < 4; a++)
      t4[a] = _mm512_add_ps(_mm512_shuffle_f32x4(t8[2 * a], t8[2 * a + 1], 0x88),
                            _mm512_shuffle_f32x4(t8[2 * a], t8[2 * a + 1], 0xDD));
    for (int a = 0; a < 2; a++)
      t2[a] = _mm512_add_ps(_mm512_unpacklo_ps(t4[2 * a], t4[2 * a + 1]), _mm512_unpackhi_ps(t4[2 * a], t4[2 * a + 1]));
    const __m512d x = _mm512_castps_pd(t2[0]), y = _mm512_castps_pd(t2[1]);
    const __m512 r = _mm512_mul_ps(
        _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y))), sv);
    _mm_storeu_ps(scores + j, _mm512_extractf32x4_ps(r, 0));
    _mm_storeu_ps(scores + kChunk + j, _mm512_extractf32x4_ps(r, 1));
    _mm_storeu_ps(scores + 2 * kChunk + j, _mm512_extractf32x4_ps(r, 2));
    _mm_storeu_ps(scores + 3 * kChunk + j, _mm512_extractf32x4_ps(r, 3));
  }
}

// 4 heads over n keys: heldScores where head_dim allows (32 to 128), else tiles of 16 keys (one
// kernel call's), then of 4; the rest through dpScores.
inline void quadScores(const uint16_t* qx, const uint16_t* qb, int64_t D, const uint16_t* k, const int64_t* rows,
                       int64_t off, int64_t n, float scale, float* scores) {
  const int64_t held = n / 4 * 4;
  if (D == 128 || D == 96 || D == 64 || D == 32) {
    if (D == 128) heldScores<4>(qb, k, rows, off, held, scale, scores);
    else if (D == 96) heldScores<3>(qb, k, rows, off, held, scale, scores);
    else if (D == 64) heldScores<2>(qb, k, rows, off, held, scale, scores);
    else heldScores<1>(qb, k, rows, off, held, scale, scores);
    if (held < n) dpScores<4>(qb, D, k, rows + held, off, n - held, scale, scores + held);
    return;
  }
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) quadScoresTile<16>(qx, D, k, rows + j, off, scale, scores + j);
  for (; j + 4 <= n; j += 4) quadScoresTile<4>(qx, D, k, rows + j, off, scale, scores + j);
  if (j < n) dpScores<4>(qb, D, k, rows + j, off, n - j, scale, scores + j);
}

// All G query heads of one KV head over n keys: 4 heads a time through quadScores where G allows
// (qx: qb rearranged by quadQueries for each 4), then 2 x 8-key tiles, then 1 x 16. Against the
// 4 x 4 tiles of dpScoresTile, quadScores took 2.9-3.2 against 3.5-3.7 ms a call (GQA, context
// 4,096, 2 threads, calls back to back, alternating); with the cache evicted before each call, as
// the attention bench does, it and the prefetch below together gain 0-9% (BENCHMARKS.md).
inline void dpScoresAll(const uint16_t* qb, const uint16_t* qx, int64_t G, int64_t D, const void* kBase,
                        const int64_t* rows, int64_t off, int64_t n, float scale, float* scores) {
  const uint16_t* k = static_cast<const uint16_t*>(kBase);
  int64_t g = 0;
  for (; g + 4 <= G; g += 4) quadScores(qx + g * D, qb + g * D, D, k, rows, off, n, scale, scores + g * kChunk);
  for (; g + 2 <= G; g += 2) dpScores<2>(qb + g * D, D, k, rows, off, n, scale, scores + g * kChunk);
  for (; g < G; g++) dpScores<1>(qb + g * D, D, k, rows, off, n, scale, scores + g * kChunk);
}

// Values micro-kernel: GB heads x NC chunks of 32 columns held in registers over all n keys, two
// keys a step. pb[g * kChunk + j] is head g's probability of key j in bf16; an odd n pairs the
// last key with itself and the padding's probability, 0.
template <int GB, int NC>
inline void dpValuesCols(float* acc, int64_t D, int64_t i, const uint16_t* v, const int64_t* rows, int64_t off,
                         int64_t n, const uint16_t* pb) {
  __m512 o[GB][2 * NC];
  for (int g = 0; g < GB; g++)
    for (int c = 0; c < 2 * NC; c++) o[g][c] = _mm512_loadu_ps(acc + g * D + i + c * W);
  for (int64_t j = 0; j < n; j += 2) {
    const uint16_t* r0 = v + rows[j] + off + i;
    const uint16_t* r1 = j + 1 < n ? v + rows[j + 1] + off + i : r0;
    __m512bh x[2 * NC];
    for (int c = 0; c < NC; c++) {
      const __m512i a = _mm512_loadu_si512(r0 + 32 * c), b = _mm512_loadu_si512(r1 + 32 * c);
      x[2 * c] = (__m512bh)_mm512_unpacklo_epi16(a, b);
      x[2 * c + 1] = (__m512bh)_mm512_unpackhi_epi16(a, b);
    }
    for (int g = 0; g < GB; g++) {
      uint32_t pair;
      std::memcpy(&pair, pb + g * kChunk + j, sizeof pair);
      const __m512bh pw = (__m512bh)_mm512_set1_epi32(int(pair));
      for (int c = 0; c < 2 * NC; c++) o[g][c] = _mm512_dpbf16_ps(o[g][c], x[c], pw);
    }
  }
  for (int g = 0; g < GB; g++)
    for (int c = 0; c < 2 * NC; c++) _mm512_storeu_ps(acc + g * D + i + c * W, o[g][c]);
}

template <int GB>
inline void dpValues(float* acc, int64_t D, const uint16_t* v, const int64_t* rows, int64_t off, int64_t n,
                     const uint16_t* pb) {
  constexpr int NC = GB >= 4 ? 2 : GB == 2 ? 2 : 4;  // at most 16 accumulators
  int64_t i = 0;
  for (; i + 32 * NC <= D; i += 32 * NC) dpValuesCols<GB, NC>(acc, D, i, v, rows, off, n, pb);
  for (; i < D; i += 32) dpValuesCols<GB, 1>(acc, D, i, v, rows, off, n, pb);
}

inline void dpValuesAll(float* acc, int64_t G, int64_t D, const void* vBase, const int64_t* rows, int64_t off,
                        int64_t n, const uint16_t* pb) {
  const uint16_t* v = static_cast<const uint16_t*>(vBase);
  int64_t g = 0;
  for (; g + 4 <= G; g += 4) dpValues<4>(acc + g * D, D, v, rows, off, n, pb + g * kChunk);
  for (; g + 2 <= G; g += 2) dpValues<2>(acc + g * D, D, v, rows, off, n, pb + g * kChunk);
  for (; g < G; g++) dpValues<1>(acc + g * D, D, v, rows, off, n, pb + g * kChunk);
}

// The unpack order of dpValuesCols: within each 32 columns, lane l of the first vector holds column
// 8 * (l / 4) + l % 4, of the second that plus 4. Column c comes from lane 4 * (c / 8) + c % 4 of the
// first vector (c % 8 < 4) or the second: two two-vector permutes per 32 columns (the scalar loop was
// 4% of a call at a context of 1,024 keys).
inline void fromUnpackOrder(float* dst, const float* src, int64_t D, float scale) {
  const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const __m512 s = _mm512_set1_ps(scale);
  for (int64_t c = 0; c < D; c += 32) {
    const __m512 a = _mm512_loadu_ps(src + c), b = _mm512_loadu_ps(src + c + 16);
    _mm512_storeu_ps(dst + c, _mm512_mul_ps(_mm512_permutex2var_ps(a, lo, b), s));
    _mm512_storeu_ps(dst + c + 16, _mm512_mul_ps(_mm512_permutex2var_ps(a, hi, b), s));
  }
}
#endif

// The first two cache lines from element `first` on: enough to start the page walk and (being two
// in a row) to train the hardware prefetcher on that region.
template <int DT>
inline void touchRows(const void* base, int64_t first) {
  constexpr int64_t esize = DT == 0 ? 4 : 2;
  const char* p = static_cast<const char*>(base) + first * esize;
  __builtin_prefetch(p, 0, 3);
  __builtin_prefetch(p + 64, 0, 3);
}

// All cache lines of n rows (rows[j] + off is row j's first element) into L1.
template <int DT>
inline void prefetchRows(const void* base, const int64_t* rows, int64_t off, int64_t n, int64_t D) {
  constexpr int64_t esize = DT == 0 ? 4 : 2;
  for (int64_t j = 0; j < n; j++) {
    const char* p = static_cast<const char*>(base) + (rows[j] + off) * esize;
    for (int64_t b = 0; b < D * esize; b += 64) __builtin_prefetch(p + b, 0, 3);
  }
}

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

// The bytes of n rows (rows[j] + off is row j's first element) summed as 64-bit words (lk::sumWords):
// what the read-pattern yardstick does with each row it reads (attentionPart<DT, true>).
template <int DT>
inline uint64_t sumRows(const void* base, const int64_t* rows, int64_t off, int64_t n, int64_t rowBytes) {
  constexpr int64_t es = DT == 0 ? 4 : 2;
  uint64_t x = 0;
  for (int64_t j = 0; j < n; j++) x += lk::sumWords(static_cast<const char*>(base) + (rows[j] + off) * es, rowBytes);
  return x;
}

// One query token against KV heads [h0, h1) over keys [p0, p1). The heads walk the range
// together, block by block: the K (then V) rows of all the task's heads of one block are one
// contiguous region, so the reads are long runs the hardware prefetcher follows, where one head at
// a time would read a few KiB from each scattered block. Contiguous runs of blocks are gathered into
// online-softmax steps of stepKeys(blockSize) keys, their keys interleaved across the step's blocks: every head's
// scores for the step, the softmax update, then the values.
// LoadsOnly: the task's K and V rows read in the kernels' order, with the same steps, read-ahead
// and prefetches, and nothing computed: the sum of their bytes as 64-bit words is returned (out and
// lse are not written). The benchmarks' limit of the read pattern itself (attentionReadPattern).
template <int DT, bool LoadsOnly = false>
uint64_t attentionPart(const AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1, float* out,
                       float* lse) {
  uint64_t loaded = 0;
  const KvArgs& c = a.cache;
  const int64_t D = c.headDim, bs = c.blockSize, nKv = c.nKvHeads;
  const int64_t G = a.nHeads / nKv, H = (h1 - h0) * G;
  const int64_t headStride = bs * D;  // from one KV head's rows of a block to the next head's
  const bool pairs = D % (2 * W) == 0;
  AttnScratch& s = attnScratch(H, D);
  float* acc = s.acc.data();
  float* sc = s.scores.data();
  const float* qt = a.q + (t * a.nHeads + h0 * G) * D;  // the task's query heads are contiguous
  // With pairs of a permuting dtype, q and the accumulator are kept in loadPair's even/odd order.
  const bool permuted = pairs && pairPermuted<DT>();
  const float* q = qt;
  // A bf16 cache with grouped queries multiplies through vdpbf16ps (see dpScoresTile) where this
  // build does (kBf16DotAttention); for MHA (G = 1) the widening kernels measured faster
  // (BENCHMARKS.md).
  const bool dp = kBf16DotAttention && DT == 2 && D % 32 == 0 && G >= 2;
  if (dp) {
#if defined(__AVX512BF16__)
    for (int64_t i = 0; i < H * D; i += 32) _mm512_storeu_si512(s.qb.data() + i, (__m512i)toBf16x32(qt + i));
    for (int64_t kh = 0; kh < h1 - h0; kh++)
      for (int64_t g = kh * G; g + 4 <= (kh + 1) * G; g += 4)
        quadQueries(s.qx.data() + g * D, s.qb.data() + g * D, D);
#endif
  } else if (permuted) {
    toPairOrder(s.q.data(), qt, H * D);
    q = s.q.data();
  }
  std::fill(acc, acc + H * D, 0.0f);
  std::fill(s.m.begin(), s.m.begin() + H, -INFINITY);
  std::fill(s.l.begin(), s.l.begin() + H, 0.0f);
  const int32_t* table = a.blockTables + int64_t(a.qSeq[t]) * a.maxBlocksPerSeq;
  const int64_t chunk = stepKeys(bs);
  auto gather = [&](int64_t p, Step& st) {
    st.n = 0;
    st.nRuns = 0;
    while (p < p1 && st.n < chunk) {
      const int64_t off = p % bs;
      const int64_t len = std::min<int64_t>({bs - off, p1 - p, chunk - st.n});
      st.base[st.nRuns] = (table[p / bs] * nKv * bs + off) * D + h0 * headStride;
      st.len[st.nRuns++] = len;
      st.n += len;
      p += len;
    }
    splitRuns(st, D, D * (DT == 0 ? 4 : 2));
    return p;
  };
  constexpr int64_t es = DT == 0 ? 4 : 2;  // bytes an element
  const int64_t nh = h1 - h0, rowBytes = D * es;
  Step steps[3];
  int64_t rowsOf[3][kChunk];  // each gathered step's keys' row offsets, in the order the kernels read them
  const int64_t* rows = rowsOf[0];  // the rows of the step being read
  // Where this CPU gains by it (a.readAhead: Intel's), the kernels' reads are asked for
  // kReadAheadBytes ahead in their order, across steps, paced from each kernel call; elsewhere,
  // with grouped queries, each row feeds several heads' arithmetic, and the core, busy with it,
  // keeps too few of the rows' cache misses in flight: the reads and the arithmetic took about the
  // sum of their times. So each kernel call first asks for the rows of the call after it (the next
  // 16 keys of the same KV head, or the next head's first 16) in L1. Alternating A/B, context
  // 4,096, 2 threads, bf16, calls back to back: 2.6-2.8 against 2.9-3.2 ms a call on avx512bf16
  // (both with quadScores), 4.8-5.0 against 5.0-5.1 on avx2; for MHA it was slower (15.3 against
  // 13.3 ms), so only G >= 2 does it.
  const bool readAhead = a.readAhead && aheadPays(rowBytes, (p1 - p0) * nh * rowBytes * 2),
             prefetchNext = !readAhead && G >= 2;
  int64_t gathered = 1;  // the last step gathered
  auto ra = makeReadAhead(
      kReadAheadBytes, nh, rowBytes, [&](int64_t st) { return st <= gathered ? steps[st % 3].n : int64_t(0); },
      [&](int64_t st, int phase, int64_t kh, int64_t j) {
        return static_cast<const char*>(phase ? c.v : c.k) + (rowsOf[st % 3][j] + kh * headStride) * es;
      });
  auto pace = [&](int64_t n) {
    if (readAhead) ra.consumed(n * rowBytes);
  };
  auto nextCall = [&](const void* base, int64_t n, int64_t kh, int64_t m) {
    if (!prefetchNext) return;
    if (m + kSub < n) return prefetchRows<DT>(base, rows + m + kSub, kh * headStride, std::min(kSub, n - m - kSub), D);
    if (kh + 1 < nh) prefetchRows<DT>(base, rows, (kh + 1) * headStride, std::min(kSub, n), D);
  };
  auto scores = [&](int64_t n, int64_t kh, int64_t m) {
    float* out = sc + kh * G * kChunk + m;
    const int64_t ns = std::min(kSub, n - m);
    pace(ns);
    nextCall(c.k, n, kh, m);
    if constexpr (LoadsOnly) {
      loaded += sumRows<DT>(c.k, rows + m, kh * headStride, ns, rowBytes);
      return;
    }
#if defined(__AVX512BF16__)
    if (dp) return dpScoresAll(s.qb.data() + kh * G * D, s.qx.data() + kh * G * D, G, D, c.k, rows + m, kh * headStride, ns, a.scale, out);
#endif
    scoresAll<DT>(pairs, q + kh * G * D, G, D, c.k, rows + m, kh * headStride, ns, a.scale, out);
  };
  auto values = [&](int64_t n, int64_t kh, int64_t m) {
    const int64_t ns = std::min(kSub, n - m), first = kh * G * kChunk + m;
    pace(ns);
    nextCall(c.v, n, kh, m);
    if constexpr (LoadsOnly) {
      loaded += sumRows<DT>(c.v, rows + m, kh * headStride, ns, rowBytes);
      return;
    }
#if defined(__AVX512BF16__)
    if (dp) return dpValuesAll(acc + kh * G * D, G, D, c.v, rows + m, kh * headStride, ns, s.pb.data() + first);
#endif
    valuesAll<DT>(pairs, acc + kh * G * D, G, D, c.v, rows + m, kh * headStride, ns, sc + first);
  };
  auto softmax = [&](int64_t n) {
    if constexpr (LoadsOnly) return;
    const int64_t nPad = (n + W - 1) / W * W;
    for (int64_t g = 0; g < H; g++) {
      float* row = sc + g * kChunk;
      if (a.softcap > 0) softcapScores(row, n, a.softcap);  // Gemma 2
      for (int64_t j = n; j < nPad; j++) row[j] = -INFINITY;  // padding: exp -> 0
      vf mv = splat(-INFINITY);
      for (int64_t j = 0; j < nPad; j += W) mv = vmax(mv, loadf(row + j));
      const float mNew = std::max(s.m[g], hmax(mv));
      const float corr = std::exp(s.m[g] - mNew);  // 0 on the first step (m = -inf)
      if (corr != 1.0f) {
        float* ag = acc + g * D;
        for (int64_t i = 0; i < D; i++) ag[i] *= corr;
      }
      vf lv = splat(0.0f);
#if defined(__AVX512BF16__)
      if (dp) {  // the probabilities rounded to bf16 for the values kernel, and summed as rounded
        uint16_t* pg = s.pb.data() + g * kChunk;
        for (int64_t j = 0; j < nPad; j += W) {
          const __m256bh e = _mm512_cvtneps_pbh((__m512)vexpNonPositive(loadf(row + j) - mNew));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(pg + j), (__m256i)e);
          lv += (vf)_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)e), 16));
        }
      } else
#endif
        for (int64_t j = 0; j < nPad; j += W) {
          const vf e = vexpNonPositive(loadf(row + j) - mNew);
          storef(row + j, e);
          lv += e;
        }
      s.l[g] = s.l[g] * corr + hsum(lv);
      s.m[g] = mNew;
    }
  };
  // Each block is a region of its own, so every run starts with a TLB miss and the hardware
  // prefetcher has to find it. Touching the first lines of each run two steps ahead gets the page
  // walk (and the DRAM row open) done long before the data is needed.
  // The step's keys interleaved across its runs (key m from run m % nRuns while all last), so
  // the kernels read every block of the step at once: several sequential streams keep more lines
  // in flight than one (a plain read of the same blocks gains about a fifth).
  auto gatherInOrder = [&](int64_t from, int64_t stepNo) {
    Step& st = steps[stepNo % 3];
    const int64_t next = gather(from, st);
    int64_t* out = rowsOf[stepNo % 3];
    for (int64_t i = 0, m = 0; m < st.n; i++)
      for (int r = 0; r < st.nRuns; r++)
        if (i < st.len[r]) out[m++] = st.base[r] + i * D;
    return next;
  };
  int64_t p = gatherInOrder(p0, 0);
  p = gatherInOrder(p, 1);
  for (int64_t stepNo = 0; steps[stepNo % 3].n > 0; stepNo++) {
    const Step& st = steps[stepNo % 3];
    const Step& far = steps[(stepNo + 2) % 3];
    p = gatherInOrder(p, stepNo + 2);
    gathered = stepNo + 2;
    for (int r = 0; r < far.nRuns; r++) {
      touchRows<DT>(c.k, far.base[r]);
      touchRows<DT>(c.v, far.base[r]);
    }
    const int64_t n = st.n;
    rows = rowsOf[stepNo % 3];
    for (int64_t kh = 0; kh < nh; kh++)
      for (int64_t m = 0; m < n; m += kSub) scores(n, kh, m);
    softmax(n);
    for (int64_t kh = 0; kh < nh; kh++)
      for (int64_t m = 0; m < n; m += kSub) values(n, kh, m);
  }
  if constexpr (LoadsOnly) return loaded;
  for (int64_t g = 0; g < H; g++) {
    const float l = s.l[g];
    const float inv = l > 0 ? 1.0f / l : 0.0f;
    if (dp) {
#if defined(__AVX512BF16__)
      fromUnpackOrder(out + g * D, acc + g * D, D, inv);
#endif
    } else if (permuted) {
      fromPairOrder(out + g * D, acc + g * D, D, inv);
    } else {
      for (int64_t i = 0; i < D; i++) out[g * D + i] = acc[g * D + i] * inv;
    }
    if (lse) lse[g] = l > 0 ? s.m[g] + std::log(l) : -INFINITY;
  }
  return 0;
}

template <bool AllowVnni>
void attentionWith(const AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1, float* out,
                   float* lse) {
  if (a.cache.dtype == lk::kI8) return i8::attention<AllowVnni>(a, t, h0, h1, p0, p1, out, lse);  // kv_int8.h
  if (a.cache.dtype == lk::kF32) attentionPart<0>(a, t, h0, h1, p0, p1, out, lse);
  else if (a.cache.dtype == lk::kF16) attentionPart<1>(a, t, h0, h1, p0, p1, out, lse);
  else attentionPart<2>(a, t, h0, h1, p0, p1, out, lse);
}

void attention(const AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1, float* out,
               float* lse) {
  attentionWith<true>(a, t, h0, h1, p0, p1, out, lse);
}

// The decode kernels' reads alone: attentionPart's on a float cache, the int8 dot-product paths'
// (kv_int8.h) on an int8 cache; false where the int8 path widens (no loads-only twin).
bool attentionLoads(const AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1, uint64_t* sum) {
  if (a.cache.dtype == lk::kI8) return i8::attentionLoads(a, t, h0, h1, p0, p1, sum);
  if (a.cache.dtype == lk::kF32) *sum = attentionPart<0, true>(a, t, h0, h1, p0, p1, nullptr, nullptr);
  else if (a.cache.dtype == lk::kF16) *sum = attentionPart<1, true>(a, t, h0, h1, p0, p1, nullptr, nullptr);
  else *sum = attentionPart<2, true>(a, t, h0, h1, p0, p1, nullptr, nullptr);
  return true;
}

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
      LK_VARIANT::attentionLoads,
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
