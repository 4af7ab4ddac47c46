// Products on float weights (f32, f16, bf16): one token streams the rows, a small batch streams
// 4-row tiles, a larger batch runs outer-product register tiles over packed token groups (and AMX
// tiles on the amxbf16 build, vdpbf16ps on the AVX-512-BF16 one: amx_bf16.h, bf16_dot.h).
// Included by kernels.cpp inside its variant namespace.
#pragma once

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
#if defined(LK_AMX)
    if (amxTakes(a)) return amxBatchRange<Tiles>(a, r0, r1);  // from kAmxFromTokens tokens
#endif
    if (a.nTokens <= lk::kSmallBatch || a.xt == nullptr) return dotStreamRange(a, r0, r1);
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
