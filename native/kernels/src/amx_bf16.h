// Batched products on bf16 weights through AMX-BF16 tiles (Sapphire Rapids and later), for the
// amxbf16 variant only (included by kernels.cpp; empty unless compiled with -mamx-tile -mamx-bf16).
// Decode attention's grouped scores went through the tiles too, until an Emerald Rapids Xeon ran
// them slower than the widening kernel (BENCHMARKS.md, "The amxbf16 variant on a Xeon").
//
// One tdpbf16ps multiplies a 16 x 32 tile of bf16 by a 16 x (16 pairs) tile into 16 x 16 fp32
// sums: 8,192 multiply-adds, 256 times a vdpbf16ps's 32. The product y = x W^T is computed
// transposed, C[row][token], so the weights are the A tiles as they lie in memory (16 rows of 64
// bytes, one row of W each, K / 32 steps) and the activations are the B tiles: the packed groups of
// bf16_dot.h (packPairs: word p * 32 + j holds token j's keys 2p and 2p + 1) are already AMX's
// pair layout, 16 pairs x 16 tokens a tile at a row stride of 128 bytes. The precision contract is
// bf16_dot.h's: activations rounded to bf16 once, exact products summed in fp32.
//
// The kernel is written against a tile-operations policy: HwTiles runs the instructions,
// EmuTiles does the same in plain C++ from the instruction set's definition (Intel SDM), so the
// tiling, packing and scatter logic is tested on every CPU with AVX-512-BF16 (the
// "amxbf16-emulated" variant, never chosen by itself), and the instructions themselves wherever
// the CPU has AMX.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "bf16_dot.h"
#include "kernel_table.h"

#if defined(__AVX512BF16__) && defined(__AMX_TILE__) && defined(__AMX_BF16__)
#include <immintrin.h>

// This build has the tile kernels (kernels.cpp builds its tables and the tiled paths on it).
#define LK_AMX 1

namespace LK_VARIANT {

// LDTILECFG's 64-byte operand, palette 1: every tile used here is 16 rows of 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t startRow = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG takes 64 bytes");

inline TileConfig fullTiles() {
  TileConfig c;
  for (int t = 0; t < 8; t++) {
    c.colsb[t] = 64;
    c.rows[t] = 16;
  }
  return c;
}

// The instructions by inline assembly: GCC's intrinsics paste their tile number into the assembly
// text, so they take only literal numbers, not a template's constants; and they tell the compiler
// nothing about the memory they read and write, where these clobber it.
struct HwTiles {
  // Tile configuration is per thread: every slice call (on whichever pool thread) loads it, and
  // releases the tiles after, so a thread that is switched out between calls has no tile state
  // for the OS to save.
  static void configure() {
    static const TileConfig cfg = fullTiles();
    __asm__ volatile("ldtilecfg %0" ::"m"(cfg) : "memory");
  }
  static void release() { __asm__ volatile("tilerelease" ::: "memory"); }
  template <int T>
  static void zero() {
    __asm__ volatile("tilezero %%tmm%c0" ::"i"(T));
  }
  template <int T>
  static void load(const void* p, int64_t strideBytes) {
    __asm__ volatile("{tileloadd (%0,%1,1), %%tmm%c2|tileloadd %%tmm%c2, [%0+%1*1]}" ::"r"(p), "r"(strideBytes), "i"(T)
                     : "memory");
  }
  template <int T>
  static void store(void* p, int64_t strideBytes) {
    __asm__ volatile("{tilestored %%tmm%c2, (%0,%1,1)|tilestored [%0+%1*1], %%tmm%c2}" ::"r"(p), "r"(strideBytes),
                     "i"(T)
                     : "memory");
  }
  // C += A . B (the assembly's AT&T order lists them backwards).
  template <int C, int A, int B>
  static void dp() {
    __asm__ volatile("{tdpbf16ps %%tmm%c2, %%tmm%c1, %%tmm%c0|tdpbf16ps %%tmm%c0, %%tmm%c1, %%tmm%c2}" ::"i"(C), "i"(A),
                     "i"(B));
  }
};

// The same operations on a per-thread array of eight 1 KiB tiles, following the SDM's
// pseudocode of TDPBF16PS: for each row m, pair k and column n, C[m][n] += A[m][2k + 1] *
// B[k][2n + 1], then += A[m][2k] * B[k][2n], each product exact in fp32.
struct EmuTiles {
  struct File {
    alignas(64) uint8_t t[8][16][64];
  };
  static File& file() {
    thread_local File f;
    return f;
  }
  static void configure() { std::memset(&file(), 0, sizeof(File)); }
  static void release() {}
  template <int T>
  static void zero() {
    std::memset(file().t[T], 0, sizeof file().t[T]);
  }
  template <int T>
  static void load(const void* p, int64_t strideBytes) {
    for (int r = 0; r < 16; r++) std::memcpy(file().t[T][r], static_cast<const char*>(p) + r * strideBytes, 64);
  }
  template <int T>
  static void store(void* p, int64_t strideBytes) {
    for (int r = 0; r < 16; r++) std::memcpy(static_cast<char*>(p) + r * strideBytes, file().t[T][r], 64);
  }
  template <int C, int A, int B>
  static void dp() {
    File& f = file();
    float a[16][32], b[16][32];
    widen(a, f.t[A]);
    widen(b, f.t[B]);
    // Column by column (each sum in the instruction's order): the same loops with the columns
    // innermost were miscompiled by GCC 12's -O3 (loop-invariant motion with the vectorizer
    // counted some products twice).
    for (int m = 0; m < 16; m++) {
      float c[16];
      std::memcpy(c, f.t[C][m], 64);
      for (int n = 0; n < 16; n++) {
        float s = c[n];
        for (int k = 0; k < 16; k++) {
          s += a[m][2 * k + 1] * b[k][2 * n + 1];
          s += a[m][2 * k] * b[k][2 * n];
        }
        c[n] = s;
      }
      std::memcpy(f.t[C][m], c, 64);
    }
  }

 private:
  // A tile's 16 rows of 32 bf16 as fp32 (exact).
  static void widen(float (&out)[16][32], const uint8_t (&tile)[16][64]) {
    uint16_t h[16][32];
    std::memcpy(h, tile, sizeof h);
    for (int r = 0; r < 16; r++)
      for (int e = 0; e < 32; e++) out[r][e] = bf16_to_f32(h[r][e]);
  }
};

// Rows per A tile and tokens per B tile.
constexpr int64_t kAmxTile = 16;
// Rows per panel: a panel's weights (64 rows x 8 KiB for K = 4096) stay in L2 while every token
// group passes over them, so only the first group reads them from memory.
constexpr int64_t kAmxPanel = 64;

// C tile c (16 rows from r, 16 tokens from t0) into out, with the bias, for the nt tokens there are:
// transposed in registers (transpose16) so each token's 16 sums are one store. Scalar, the scatter
// of 256 sums took 12% of a hidden-1024 product at 64 tokens (one pass over K = 1024 per block).
template <class Tiles, int C>
inline void amxStoreTile(const lk::MatmulArgs& a, int64_t r, int64_t t0, int64_t nt) {
  alignas(64) float c[16][16];
  Tiles::template store<C>(c, 64);
  __m512i v[16];
  for (int i = 0; i < 16; i++) v[i] = _mm512_load_si512(c[i]);
  transpose16(v);
  const __m512 bias = a.bias ? _mm512_loadu_ps(a.bias + r) : _mm512_setzero_ps();
  for (int64_t j = 0; j < nt; j++) _mm512_storeu_ps(a.out + (t0 + j) * a.rows + r, _mm512_add_ps((__m512)v[j], bias));
}

// out rows [r, r + 16 * RT) for tokens [t0, t0 + min(nt, 16 * TT)) of the group at xg (packPairs),
// over all of K (a multiple of 32): C tiles 0-3 (row tile i, token tile j at 2i + j), A tiles 4-5,
// B tiles 6-7. `prefetch`: ask for each weight row's lines a few steps ahead (the first group of a
// panel reads the weights from memory; the others find them in L2).
template <class Tiles, int RT, int TT>
inline void amxBlock(const lk::MatmulArgs& a, int64_t r, const uint32_t* xg, int64_t t0, int64_t nt, bool prefetch) {
  const int64_t K = a.cols;
  const uint16_t* w = static_cast<const uint16_t*>(a.w) + r * K;
  const int64_t wStride = K * 2, xStride = lk::kTokenGroup * 4;
  Tiles::template zero<0>();
  if constexpr (TT > 1) Tiles::template zero<1>();
  if constexpr (RT > 1) Tiles::template zero<2>();
  if constexpr (RT > 1 && TT > 1) Tiles::template zero<3>();
  float* const outAt = a.out + t0 * a.rows + r;
  for (int64_t k = 0; k < K; k += 32) {
    if (prefetch)  // one line of every row a step, 16 lines (16 steps) ahead
      for (int i = 0; i < 16 * RT; i++) __builtin_prefetch(w + i * K + k + 512, 0, 3);
    // The lines the tiles' sums will be stored to, one token's a step, asked for with intent to
    // write while the products run (they are cold: the store's reads for ownership stalled it).
    if (const int64_t j = k / 32; j < nt) {
      float* const o = outAt + j * a.rows;
      __asm__ volatile("prefetchw %0" ::"m"(*o));
      if constexpr (RT > 1) __asm__ volatile("prefetchw %0" ::"m"(o[16]));
    }
    const uint32_t* xk = xg + (k / 2) * lk::kTokenGroup;
    Tiles::template load<4>(w + k, wStride);
    Tiles::template load<6>(xk, xStride);
    if constexpr (TT > 1) Tiles::template load<7>(xk + 16, xStride);
    Tiles::template dp<0, 4, 6>();
    if constexpr (TT > 1) Tiles::template dp<1, 4, 7>();
    if constexpr (RT > 1) {
      Tiles::template load<5>(w + 16 * K + k, wStride);
      Tiles::template dp<2, 5, 6>();
      if constexpr (TT > 1) Tiles::template dp<3, 5, 7>();
    }
  }
  const int64_t n0 = std::min<int64_t>(nt, 16), n1 = std::min<int64_t>(nt, 32) - 16;
  amxStoreTile<Tiles, 0>(a, r, t0, n0);
  if constexpr (TT > 1) amxStoreTile<Tiles, 1>(a, r, t0 + 16, n1);
  if constexpr (RT > 1) amxStoreTile<Tiles, 2>(a, r + 16, t0, n0);
  if constexpr (RT > 1 && TT > 1) amxStoreTile<Tiles, 3>(a, r + 16, t0 + 16, n1);
}

// The tiles take bf16 products from this many tokens (the addon packs them from there on): from 6
// to 8 tokens the vdpbf16ps streaming tiles are bound by their arithmetic on this variant's CPUs
// (4096 x 4096, 2 threads: 1.72-1.78 ms at 6 tokens and 2.13-2.18 at 8, against the tiles'
// 1.31-1.32 at either; decode steps of 6 / 8 sequences 1.05-1.07x / 1.23-1.27x faster for a
// SmolLM2-135M shape, 1.15x / 1.37x for Llama-3.2-1B). At 5 the 135M shape's step was level to 4%
// slower (the 1B's 1.04-1.09x faster), at 4 the 1B's 5% slower.
constexpr int64_t kAmxFromTokens = 6;

// Whether the tiles take this product: bf16 weights, a packed batch, K a whole number of 32-key
// steps (every model dimension in use; others take the vdpbf16ps tiles).
inline bool amxTakes(const lk::MatmulArgs& a) { return a.xt != nullptr && a.cols % 32 == 0; }

// Rows [r0, r1) for a batch over its packed groups: panel by panel, every group, 32 rows at a
// time (16 for the last whole tile); rows short of a tile take the vdpbf16ps outer-product tiles.
template <class Tiles>
inline void amxBatchRange(const lk::MatmulArgs& a, int64_t r0, int64_t r1) {
  const int64_t K = a.cols, groups = lk::tokenGroups(a.nTokens);
  Tiles::configure();
  for (int64_t p0 = r0; p0 < r1; p0 += kAmxPanel) {
    const int64_t p1 = std::min(r1, p0 + kAmxPanel);
    for (int64_t g = 0; g < groups; g++) {
      const int64_t t0 = g * lk::kTokenGroup, nt = std::min(lk::kTokenGroup, a.nTokens - t0);
      const uint32_t* xg = pairGroup(a.xt, g, K);
      const bool pf = g == 0;
      int64_t r = p0;
      for (; r + 2 * kAmxTile <= p1; r += 2 * kAmxTile)
        nt > 16 ? amxBlock<Tiles, 2, 2>(a, r, xg, t0, nt, pf) : amxBlock<Tiles, 2, 1>(a, r, xg, t0, nt, pf);
      for (; r + kAmxTile <= p1; r += kAmxTile)
        nt > 16 ? amxBlock<Tiles, 1, 2>(a, r, xg, t0, nt, pf) : amxBlock<Tiles, 1, 1>(a, r, xg, t0, nt, pf);
      for (; r < p1; r += kDotRows) {
        const int rows = int(std::min<int64_t>(kDotRows, p1 - r));
        if (nt > 16) dotOuterRows<2>(rows, a, r, xg, t0, nt);
        else dotOuterRows<1>(rows, a, r, xg, t0, nt);
      }
    }
  }
  Tiles::release();
}

// n rounds of six independent tdpbf16ps chains (tiles 0-5 += 6 x 7): the tiles' peak, the
// yardstick for this variant's batched products. Six accumulators cover the instruction's latency
// at its issue rate on current cores; the sum is returned so the loop cannot be dropped.
template <class Tiles>
inline double tileLoop(int64_t n) {
  alignas(64) uint16_t ab[16][32];
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 32; j++) ab[i][j] = f32_to_bf16(1e-3f * float(i + j));
  Tiles::configure();
  Tiles::template zero<0>();
  Tiles::template zero<1>();
  Tiles::template zero<2>();
  Tiles::template zero<3>();
  Tiles::template zero<4>();
  Tiles::template zero<5>();
  Tiles::template load<6>(ab, 64);
  Tiles::template load<7>(ab, 64);
  for (int64_t r = 0; r < n; r++) {
    Tiles::template dp<0, 6, 7>();
    Tiles::template dp<1, 6, 7>();
    Tiles::template dp<2, 6, 7>();
    Tiles::template dp<3, 6, 7>();
    Tiles::template dp<4, 6, 7>();
    Tiles::template dp<5, 6, 7>();
  }
  alignas(64) float c[16][16];
  Tiles::template store<0>(c, 64);
  Tiles::release();
  return double(c[0][0]) + double(c[15][15]);
}
// 6 tiles x 16 x 16 sums x 32 products x 2 flops.
constexpr double kTileFlopsPerRound = 6.0 * 16 * 16 * 32 * 2;

}  // namespace LK_VARIANT

#endif  // AMX
