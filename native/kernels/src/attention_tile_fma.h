// Prompt attention tiles through fp32 multiply-adds, on every variant (see attention_tile.h for
// what a tile is): the path of f16 and f32 caches, of bf16 caches wherever the vdpbf16ps tiles
// (attention_tile_dot.h) do not apply, and of int8 caches on the portable build (the others multiply
// bytes: attention_tile_i8.h). Keys and values are widened to fp32 once per step (int8 ones
// dequantized: code x scale) and queries stay fp32, so the results are the per-token kernel's up to
// summation order. Included by kernels.cpp inside its variant namespace, after kv_int8.h.
//
// Layouts (rows in lanes):
//   qt [D][R]     queries transposed: W rows a vector
//   kf, vw [keys][D]  the step's key and value rows widened to fp32
//   s  [keys][R]  scores: s[j] += broadcast(kf[j][d]) * qt[d], then probabilities in place
//   o  [R][D]     running numerator: o[r] += broadcast(s[j][r]) * vw[j]

// Register tiles: scores kSRows vectors of rows x kSKeys keys, values kVRows rows x kVCols vectors
// of columns; AVX-512's 32 registers take 16 and 24 sums, 16-register ISAs 8 and 12 (6 rows x 2:
// 3-4% faster than 4 x 2 on the avx2 build).
constexpr int kSRows = 2, kSKeys = W == 16 ? 8 : 4;
constexpr int kVRows = 6, kVCols = W == 16 ? 4 : 2;
// Rows are padded to whole scores tiles.
constexpr int64_t kFmaRowQuantum = kSRows * W;

struct FmaTileScratch {
  lk::LineVector<float> qt, kf, vw, s, o;
  TileRowState st;
  FmaTileScratch()
      : qt(lk::kTileMaxHeadDim * lk::kTileRows),
        kf(kTileKeys * lk::kTileMaxHeadDim),
        vw(kTileKeys * lk::kTileMaxHeadDim),
        s(kTileKeys * lk::kTileRows),
        o(lk::kTileRows * lk::kTileMaxHeadDim) {}
};

// The step's nk rows of K or V (as stored) widened to fp32, one after another.
template <int DT, class T>
inline void fmaWiden(float* dst, const T* const* rows, int64_t nk, int64_t D) {
  for (int64_t j = 0; j < nk; j++)
    for (int64_t d = 0; d < D; d += W) storef(dst + j * D + d, loadw<DT>(rows[j], d));
}

// Scores of kSKeys keys x kSRows vectors of rows, from row vector r0 / W on.
inline void fmaScores(const float* qt, int64_t R, int64_t D, const float* kf, int64_t r0, float* s) {
  vf acc[kSKeys][kSRows];
  for (int j = 0; j < kSKeys; j++)
    for (int v = 0; v < kSRows; v++) acc[j][v] = splat(0.0f);
  for (int64_t d = 0; d < D; d++) {
    vf q[kSRows];
    for (int v = 0; v < kSRows; v++) q[v] = loadf(qt + d * R + r0 + v * W);
    for (int j = 0; j < kSKeys; j++) {
      const vf k = splat(kf[j * D + d]);
      for (int v = 0; v < kSRows; v++) acc[j][v] += k * q[v];
    }
  }
  for (int j = 0; j < kSKeys; j++)
    for (int v = 0; v < kSRows; v++) storef(s + j * R + r0 + v * W, acc[j][v]);
}

// One vector of W rows (from r0) over the step's nk slots at positions k0 + j: masked to the rows'
// ranges where the step reaches past one, scaled, the running max and denominator updated, and the
// scores replaced by their probabilities; where `weight` is given (the int8 tiles: each key's V
// scale), by the probabilities times their key's weight, whose largest per row goes to *wmax (the
// denominator still sums the probabilities alone).
inline void fmaSoftmax(float* s, int64_t R, TileRowState& st, int64_t r0, int64_t k0, int64_t nk, float scale,
                       const float* weight = nullptr, vf* wmax = nullptr) {
  const bool inside = tileRowsInside(st, r0, k0, nk);
  vi start, end;
  std::memcpy(&start, st.start + r0, sizeof start);
  std::memcpy(&end, st.end + r0, sizeof end);
  const vf ninf = splat(-INFINITY);
  vf mx = ninf;
  for (int64_t j = 0; j < nk; j++) {
    vf x = loadf(s + j * R + r0) * scale;
    if (!inside) {
      vi pos;
      for (int i = 0; i < W; i++) pos[i] = int32_t(k0 + j);
      x = (pos >= start) & (pos < end) ? x : ninf;
    }
    storef(s + j * R + r0, x);
    mx = vmax(mx, x);
  }
  const vf mOld = loadf(st.m + r0);
  const vf mNew = vmax(mOld, mx);
  // A row with no key in range yet keeps m = -inf: its exponentials are taken against 0, so they
  // (and its corr, and so its numerator) are 0 rather than NaN.
  const vf mSafe = mNew == ninf ? splat(0.0f) : mNew;
  const vf corr = vexpNonPositive(mOld - mSafe);
  vf sum = splat(0.0f);
  if (weight) {
    vf wm = splat(0.0f);
    for (int64_t j = 0; j < nk; j++) {
      const vf e = vexpNonPositive(loadf(s + j * R + r0) - mSafe);
      const vf w = e * weight[j];
      storef(s + j * R + r0, w);
      sum += e;
      wm = vmax(wm, w);
    }
    *wmax = wm;
  } else {
    for (int64_t j = 0; j < nk; j++) {
      const vf e = vexpNonPositive(loadf(s + j * R + r0) - mSafe);
      storef(s + j * R + r0, e);
      sum += e;
    }
  }
  storef(st.l + r0, loadf(st.l + r0) * corr + sum);
  storef(st.m + r0, mNew);
  storef(st.corr + r0, corr);
}

// o rows [r0, r0 + RB), columns [c0, c0 + DC * W): rescaled by their rows' corr, then plus the
// step's probabilities times its values.
template <int RB, int DC>
inline void fmaValues(float* o, int64_t D, const float* p, int64_t R, const float* vfs, int64_t nk, int64_t r0,
                      int64_t c0, const float* corr) {
  vf acc[RB][DC];
  for (int r = 0; r < RB; r++) {
    const vf c = splat(corr[r0 + r]);
    for (int k = 0; k < DC; k++) acc[r][k] = loadf(o + (r0 + r) * D + c0 + k * W) * c;
  }
  for (int64_t j = 0; j < nk; j++) {
    vf v[DC];
    for (int k = 0; k < DC; k++) v[k] = loadf(vfs + j * D + c0 + k * W);
    for (int r = 0; r < RB; r++) {
      const vf pr = splat(p[j * R + r0 + r]);
      for (int k = 0; k < DC; k++) acc[r][k] += pr * v[k];
    }
  }
  for (int r = 0; r < RB; r++)
    for (int k = 0; k < DC; k++) storef(o + (r0 + r) * D + c0 + k * W, acc[r][k]);
}

// Rows [0, rows) in tiles of kVRows (the last one smaller), columns kVCols vectors at a time.
template <int DC>
inline void fmaValuesCols(float* o, int64_t D, const float* p, int64_t R, const float* vfs, int64_t nk, int64_t rows,
                          int64_t c0, const float* corr) {
  int64_t r = 0;
  for (; r + kVRows <= rows; r += kVRows) fmaValues<kVRows, DC>(o, D, p, R, vfs, nk, r, c0, corr);
  for (; r < rows; r++) fmaValues<1, DC>(o, D, p, R, vfs, nk, r, c0, corr);
}

// The cache kinds of attentionTileFma: DT 0, 1 and 2 (f32, f16, bf16) as loadw numbers them, and
// int8, whose rows are dequantized instead of widened.
constexpr int kTileInt8 = 3;

// Query tokens [t0, t1) of one sequence (a prompt run: see AttentionRunner) against KV head kh,
// their G query heads each a row; the caller has checked lk::tileFits and that the rows fit
// kTileRows.
template <int DT>
inline void attentionTileFma(const AttnArgs& a, int64_t t0, int64_t t1, int64_t kh) {
  const KvArgs& c = a.cache;
  const int64_t D = c.headDim, bs = c.blockSize, nKv = c.nKvHeads, G = a.nHeads / nKv;
  const int64_t rows = (t1 - t0) * G, R = (rows + kFmaRowQuantum - 1) / kFmaRowQuantum * kFmaRowQuantum;
  thread_local FmaTileScratch t;
  int32_t lo, hi;
  tileInitRows(a, t0, kh, rows, R, t.st, lo, hi, [&](int64_t r, const float* q) {
    for (int64_t d = 0; d < D; d++) t.qt[d * R + r] = q[d];
  });
  std::fill(t.o.begin(), t.o.begin() + R * D, 0.0f);
  const int32_t* table = a.blockTables + int64_t(a.qSeq[t0]) * a.maxBlocksPerSeq;
  using Elem = std::conditional_t<DT == 0, float, uint16_t>;  // unused for int8 (rows dequantized)
  const Elem* kc = static_cast<const Elem*>(c.k);
  const Elem* vc = static_cast<const Elem*>(c.v);
  const Elem* krow[kTileKeys];
  const Elem* vrow[kTileKeys];
  for (int64_t k0 = lo / kTileKeys * kTileKeys; k0 < hi; k0 += kTileKeys) {
    const int64_t nk = std::min<int64_t>(kTileKeys, (hi - k0 + kSKeys - 1) / kSKeys * kSKeys);
    if constexpr (DT == kTileInt8) {
      i8::tileDequant(c, table, k0, nk, lo, hi, kh, false, t.kf.data());
    } else {
      tileStepRows(kc, vc, table, k0, nk, lo, hi, bs, nKv, kh, D, krow, vrow);
      fmaWiden<DT>(t.kf.data(), krow, nk, D);
    }
    for (int64_t j = 0; j < nk; j += kSKeys)
      for (int64_t r0 = 0; r0 < R; r0 += kFmaRowQuantum) fmaScores(t.qt.data(), R, D, t.kf.data() + j * D, r0, t.s.data() + j * R);
    const float scale = tileCapScores(a, t.s.data(), R, nk);
    for (int64_t r0 = 0; r0 < R; r0 += W) fmaSoftmax(t.s.data(), R, t.st, r0, k0, nk, scale);
    if constexpr (DT == kTileInt8) i8::tileDequant(c, table, k0, nk, lo, hi, kh, true, t.vw.data());
    else fmaWiden<DT>(t.vw.data(), vrow, nk, D);
    int64_t c0 = 0;
    for (; c0 + kVCols * W <= D; c0 += kVCols * W)
      fmaValuesCols<kVCols>(t.o.data(), D, t.s.data(), R, t.vw.data(), nk, rows, c0, t.st.corr);
    for (; c0 < D; c0 += W) fmaValuesCols<1>(t.o.data(), D, t.s.data(), R, t.vw.data(), nk, rows, c0, t.st.corr);
  }
  tileWriteRows(a, t0, kh, rows, t.o.data(), t.st);
}
