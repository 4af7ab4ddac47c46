// Products on bf16 weights through the AVX-512-BF16 dot-product instruction (vdpbf16ps), for the
// avx512bf16 variant only (included by kernels.cpp; empty unless compiled with -mavx512bf16).
//
// Precision contract of this variant: every product with bf16 weights rounds its activations to
// bf16 (round-to-nearest-even) and sums the exact bf16 x bf16 products in fp32, as bf16 GEMMs on
// CPUs do (oneDNN, llama.cpp's bf16 dot). The weights are bf16 already, so the only new error is
// the activations' rounding: unit roundoff 2^-8 per element, the same as a bf16 KV cache adds to
// attention. (The hardware conversion the streaming tiles use also flushes denormal activations,
// below 1.2e-38, to zero; the batched packing rounds them like any other value.) Every batch size (matvec, small batch, batched) rounds the same way, so a token's
// result does not depend on what it was batched with beyond fp32 summation order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "line_vector.h"
#include "kernel_table.h"
#include "read_ahead.h"
#include "simd.h"

#if defined(__AVX512BF16__)

namespace LK_VARIANT {

// A 32-bit word holding two bf16 values: lo in bits 0-15 (the even element), hi in 16-31.
inline uint32_t bf16Pair(float lo, float hi) { return uint32_t(f32_to_bf16(lo)) | uint32_t(f32_to_bf16(hi)) << 16; }

// 32 activations x[k, k + 32) rounded to bf16, in order (element i of the result is x[k + i]).
inline __m512bh toBf16x32(const float* x) {
  return _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x));
}

inline __m512bh loadBf16x32(const uint16_t* p) { return (__m512bh)_mm512_loadu_si512(p); }

// ---- streaming tiles (1..kSmallBatch tokens): R weight rows x T tokens over the whole of K ----

// As matmulTile in matmul_float.h, with the weights read as 32 bf16 a step and multiplied by the
// activations already rounded to bf16 (xb: the slice's copy, see dotStreamRange), two products a
// lane per instruction.
// Ahead: the weight rows are asked for kWeightReadAheadBytes ahead (a.readAhead; read_ahead.h).
template <int R, int T, bool Ahead>
inline void dotTile(const lk::MatmulArgs& a, const uint16_t* xb, int64_t r, int64_t t, int64_t rs) {
  const int64_t K = a.cols, kv = K / 32 * 32;
  const uint16_t* w = static_cast<const uint16_t*>(a.w);
  __m512 acc[R][T];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < T; j++) acc[i][j] = _mm512_setzero_ps();
  const uint16_t* xs[T];
  for (int j = 0; j < T; j++) xs[j] = xb + (t + j) * K;
  for (int64_t k = 0; k < kv; k += 32) {
    __m512bh xv[T];
    for (int j = 0; j < T; j++) xv[j] = loadBf16x32(xs[j] + k);
    for (int i = 0; i < R; i++) {
      // Two 32-byte halves: weight rows are not 64-byte aligned, and one 64-byte load then spans
      // two cache lines every time (batch 1, 4096x4096, one thread: 1.41 against 1.13 ms for the
      // fp32 tiles as one load; about even, and batch 3 and 8 ahead, as two).
      const uint16_t* wp = w + (r + i * rs) * K + k;
      if constexpr (Ahead) weightReadAhead<64>(wp, 0);
      const __m512bh wv = (__m512bh)_mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp))),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + 16)), 1);
      for (int j = 0; j < T; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv, xv[j]);
    }
  }
  for (int i = 0; i < R; i++) {
    const int64_t row = r + i * rs;
    for (int j = 0; j < T; j++) {
      float s = _mm512_reduce_add_ps(acc[i][j]);
      for (int64_t k = kv; k < K; k++) s += bf16_to_f32(w[row * K + k]) * bf16_to_f32(xs[j][k]);
      if (a.bias) s += a.bias[row];
      a.out[(t + j) * a.rows + row] = s;
    }
  }
}

// Rows [r0, r1) for up to kSmallBatch tokens, as four streams a quarter of the range apart (see
// matvecRange in matmul_float.h), three tokens a tile. The slice first rounds x to bf16 once into
// per-thread scratch: converting in the tiles redid it for every 4 rows, and made batch 8 slower
// than the fp32 tiles (3.9 against 3.3 ms, 4096x4096, one thread).
inline void dotStreamRange(const lk::MatmulArgs& a, int64_t r0, int64_t r1) {
  thread_local lk::LineVector<uint16_t> scratch;
  const int64_t n = a.nTokens * a.cols;
  if (int64_t(scratch.size()) < n) scratch.resize(size_t(n));
  uint16_t* xb = scratch.data();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) _mm512_storeu_si512(xb + i, (__m512i)toBf16x32(a.x + i));
  for (; i < n; i++) xb[i] = f32_to_bf16(a.x[i]);
  auto rows = [&](auto aheadTag) {
    constexpr bool Ahead = decltype(aheadTag)::value;
    // Only a tile's first pass over its rows reads them from memory (and asks ahead); the
    // passes for its other tokens find them in cache.
    auto tile = [&](auto rowsTag, auto tokensTag, int64_t r, int64_t t, int64_t rs) {
      constexpr int R = decltype(rowsTag)::value, T = decltype(tokensTag)::value;
      t == 0 ? dotTile<R, T, Ahead>(a, xb, r, t, rs) : dotTile<R, T, false>(a, xb, r, t, rs);
    };
    auto tiles = [&](auto rowsTag, int64_t r, int64_t rs) {
      int64_t t = 0;
      for (; t + 3 <= a.nTokens; t += 3) tile(rowsTag, std::integral_constant<int, 3>{}, r, t, rs);
      if (a.nTokens - t == 2) tile(rowsTag, std::integral_constant<int, 2>{}, r, t, rs);
      else if (a.nTokens - t == 1) tile(rowsTag, std::integral_constant<int, 1>{}, r, t, rs);
    };
    const int64_t q = (r1 - r0) / 4;
    for (int64_t i = 0; i < q; i++) tiles(std::integral_constant<int, 4>{}, r0 + i, q);
    for (int64_t r = r0 + 4 * q; r < r1; r++) tiles(std::integral_constant<int, 1>{}, r, 1);
  };
  a.readAhead ? rows(std::true_type{}) : rows(std::false_type{});
}

// ---- batched (more than kSmallBatch tokens): outer-product tiles over bf16 pairs ----------------

// The packed activations of this variant for bf16 weights: group g (at the same offset as the fp32
// layout, xt + g * K * kTokenGroup floats, so thread-parallel packing by group is unchanged) holds
// for key pair p and token j the word xt32[p * kTokenGroup + j] = bf16Pair(x[j][2p], x[j][2p + 1]),
// zero past K and for the last group's missing tokens. It takes half the fp32 layout's space, so
// it starts at the first 64-byte boundary of its group's space (pairGroup): the pair vectors the
// tiles load are then whole cache lines.
// The pairs take (K + 1) / 2 * 128 bytes of the group's K * 128, so the up to 60 bytes of the shift
// fit for every K from 2 on; K = 1 stays where it is.
inline uint32_t* pairGroup(const float* xt, int64_t g, int64_t K) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(xt + g * K * lk::kTokenGroup);
  return reinterpret_cast<uint32_t*>(K >= 2 ? (p + 63) & ~uintptr_t(63) : p);
}

// The 16 words bf16Pair(x[2i], x[2i + 1]) of x[0, 32), in order.
inline __m512i bf16Pairs16(const float* x) {
  const __m256i lo = _mm512_cvtepi32_epi16((__m512i)bf16Bits(loadf(x)));
  const __m256i hi = _mm512_cvtepi32_epi16((__m512i)bf16Bits(loadf(x + 16)));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// r[i][c] -> r[c][i] for a 16 x 16 matrix of 32-bit words (AVX-512; quant_panel.h's transpose8x8 is
// the 8 x 8 on 256-bit vectors): pairs of rows interleaved by words, then by double words (64 bits),
// then 128-bit lanes gathered across the four groups of rows.
inline void transpose16(__m512i* r) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // u[4i + k], lane L: column 4L + k of rows 4i..4i + 3.
  for (int i = 0; i < 4; i++) {
    u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int k = 0; k < 4; k++) {
    const __m512i a0 = _mm512_shuffle_i32x4(u[k], u[4 + k], 0x88), a1 = _mm512_shuffle_i32x4(u[k], u[4 + k], 0xdd);
    const __m512i a2 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0x88);
    const __m512i a3 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0xdd);
    r[k] = _mm512_shuffle_i32x4(a0, a2, 0x88);
    r[8 + k] = _mm512_shuffle_i32x4(a0, a2, 0xdd);
    r[4 + k] = _mm512_shuffle_i32x4(a1, a3, 0x88);
    r[12 + k] = _mm512_shuffle_i32x4(a1, a3, 0xdd);
  }
}

// Groups [g0, g1) in the layout above. Pairs in blocks of 16 (32 values of each token), 16 tokens at
// a time: each token's 16 words rounded in one go, then transposed so each pair's 16 tokens are one
// store (the scalar word-by-word packing was 9% of a 2048-token prefill of a 135M model); the pairs
// past the last whole block word by word. Both round as bf16Pair does: the same words.
inline void packPairs(float* xt, const float* x, int64_t nTokens, int64_t K, int64_t g0, int64_t g1) {
  constexpr int64_t G = lk::kTokenGroup;
  static_assert(G % 16 == 0, "tokens in sixteens");
  const int64_t pairs = (K + 1) / 2, blockPairs = K / 32 * 16;
  for (int64_t g = g0; g < g1; g++) {
    const int64_t t0 = g * G, nt = std::min(G, nTokens - t0);
    uint32_t* dst = pairGroup(xt, g, K);
    for (int64_t p0 = 0; p0 < blockPairs; p0 += 16)
      for (int64_t j0 = 0; j0 < G; j0 += 16) {
        __m512i r[16];
        for (int64_t i = 0; i < 16; i++)
          r[i] = j0 + i < nt ? bf16Pairs16(x + (t0 + j0 + i) * K + 2 * p0) : _mm512_setzero_si512();
        transpose16(r);
        for (int64_t i = 0; i < 16; i++) _mm512_storeu_si512(dst + (p0 + i) * G + j0, r[i]);
      }
    for (int64_t j = 0; j < G; j++) {
      const float* src = j < nt ? x + (t0 + j) * K : nullptr;
      for (int64_t p = blockPairs; p < pairs; p++) {
        const float lo = src ? src[2 * p] : 0.0f;
        const float hi = src && 2 * p + 1 < K ? src[2 * p + 1] : 0.0f;
        dst[p * G + j] = bf16Pair(lo, hi);
      }
    }
  }
}

// Two weights of row `row` from key 2p on as one word, the second zero past K (an odd K's last
// pair would otherwise read the next row's first weight).
inline uint32_t weightPair(const uint16_t* w, int64_t K, int64_t row, int64_t p) {
  const uint16_t* e = w + row * K + 2 * p;
  if (2 * p + 1 < K) {
    uint32_t u;
    std::memcpy(&u, e, 4);
    return u;
  }
  return e[0];
}

// Rows per tile and token vectors per tile: 12 x 2 sums of 16 tokens fill 24 of the 32 registers
// (2 activation vectors and the broadcast weights take the rest).
constexpr int kDotRows = 12;
// Rows per panel: a panel's weights (48 rows x 8 KiB for K = 4096) stay in L2 while every token
// group passes over them, so only the first group reads them from memory.
constexpr int64_t kDotPanel = 4 * kDotRows;

// out rows [r, r + R) for V * 16 tokens of group g from t0 on, over all of K: sums in registers,
// every weight pair broadcast once from the bf16 weights (no widening or staging) against the
// group's pair vectors. Each row's next cache lines are prefetched a few steps ahead.
template <int R, int V>
inline void dotOuterTile(const lk::MatmulArgs& a, int64_t r, const uint32_t* xg, int64_t t0, int64_t nt) {
  const int64_t K = a.cols, pairs = (K + 1) / 2, fullPairs = K / 2;
  const uint16_t* w = static_cast<const uint16_t*>(a.w);
  __m512 acc[R][V];
  for (int i = 0; i < R; i++)
    for (int v = 0; v < V; v++) acc[i][v] = _mm512_setzero_ps();
  const uint16_t* rowp[R];
  for (int i = 0; i < R; i++) rowp[i] = w + (r + i) * K;
  int64_t p = 0;
  for (; p < fullPairs; p++) {
    if ((p & 31) == 0)  // one 64-byte line of every row per 32 pairs, 512 bytes ahead
      for (int i = 0; i < R; i++) __builtin_prefetch(rowp[i] + 2 * p + 256, 0, 3);
    __m512bh xv[V];
    for (int v = 0; v < V; v++) xv[v] = (__m512bh)_mm512_loadu_si512(xg + p * lk::kTokenGroup + v * 16);
    for (int i = 0; i < R; i++) {
      uint32_t u;
      std::memcpy(&u, rowp[i] + 2 * p, 4);
      const __m512bh b = (__m512bh)_mm512_set1_epi32(int(u));
      for (int v = 0; v < V; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], xv[v], b);
    }
  }
  for (; p < pairs; p++) {  // an odd K's last key
    __m512bh xv[V];
    for (int v = 0; v < V; v++) xv[v] = (__m512bh)_mm512_loadu_si512(xg + p * lk::kTokenGroup + v * 16);
    for (int i = 0; i < R; i++) {
      const __m512bh b = (__m512bh)_mm512_set1_epi32(int(weightPair(w, K, r + i, p)));
      for (int v = 0; v < V; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], xv[v], b);
    }
  }
  alignas(64) float tile[R][V * 16];
  for (int i = 0; i < R; i++)
    for (int v = 0; v < V; v++) _mm512_store_ps(&tile[i][v * 16], acc[i][v]);
  // Token by token, each a contiguous run of its output row.
  const int64_t n = std::min<int64_t>(nt, V * 16);
  for (int64_t j = 0; j < n; j++) {
    float* o = a.out + (t0 + j) * a.rows + r;
    for (int i = 0; i < R; i++) o[i] = tile[i][j] + (a.bias ? a.bias[r + i] : 0.0f);
  }
}

// dotOuterTile for a run-time row count rows <= R (the panel's last tile).
template <int V, int R = kDotRows>
inline void dotOuterRows(int rows, const lk::MatmulArgs& a, int64_t r, const uint32_t* xg, int64_t t0, int64_t nt) {
  if constexpr (R > 1)
    if (rows < R) return dotOuterRows<V, R - 1>(rows, a, r, xg, t0, nt);
  dotOuterTile<R, V>(a, r, xg, t0, nt);
}

// Rows [r0, r1) for a batch over its packed groups (packPairs): panel by panel, every group, every
// tile of the panel; the second half of a group of 16 tokens or fewer is skipped.
inline void dotBatchRange(const lk::MatmulArgs& a, int64_t r0, int64_t r1) {
  const int64_t K = a.cols;
  for (int64_t p0 = r0; p0 < r1; p0 += kDotPanel) {
    const int64_t p1 = std::min(r1, p0 + kDotPanel);
    for (int64_t g = 0; g < lk::tokenGroups(a.nTokens); g++) {
      const int64_t t0 = g * lk::kTokenGroup, nt = std::min(lk::kTokenGroup, a.nTokens - t0);
      const uint32_t* xg = pairGroup(a.xt, g, K);
      for (int64_t r = p0; r < p1; r += kDotRows) {
        const int rows = int(std::min<int64_t>(kDotRows, p1 - r));
        if (nt > 16) dotOuterRows<2>(rows, a, r, xg, t0, nt);
        else dotOuterRows<1>(rows, a, r, xg, t0, nt);
      }
    }
  }
}

// n rounds of kDotChains independent vdpbf16ps chains (16 lanes x 2 products x 2 flops each a
// round): the instruction's peak, the yardstick for the batched product. 24 chains cover any
// latency × throughput product of current cores. The sum is returned so the loop cannot be dropped.
constexpr int kDotChains = 24;
inline double dotLoop(int64_t n) {
  __m512 c[kDotChains];
  for (int i = 0; i < kDotChains; i++) c[i] = _mm512_set1_ps(1e-3f * float(i));
  const __m512bh m = (__m512bh)_mm512_set1_epi32(0x3f7f3f7f), b = (__m512bh)_mm512_set1_epi32(0x33d633d6);
  // Unrolled by hand of the compiler: left to itself GCC 12 interchanged the loops and kept the
  // chains in memory (a load, two dot products and a store per chain), which timed the store
  // forwarding, not the instruction.
  for (int64_t r = 0; r < n; r++) {
#pragma GCC unroll 32
    for (int i = 0; i < kDotChains; i++) c[i] = _mm512_dpbf16_ps(c[i], m, b);
  }
  __m512 s = c[0];
  for (int i = 1; i < kDotChains; i++) s = _mm512_add_ps(s, c[i]);
  return _mm512_reduce_add_ps(s);
}
constexpr double kDotFlopsPerRound = kDotChains * 64.0;

}  // namespace LK_VARIANT

#endif  // __AVX512BF16__
