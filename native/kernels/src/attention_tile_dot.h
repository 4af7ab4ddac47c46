// Prompt attention tiles through vdpbf16ps (the AVX-512-BF16 build, bf16 cache, grouped queries):
// see attention_tile.h for what a tile is. Included by kernels.cpp inside its variant namespace.
//
// Layouts (rows in lanes, so the online softmax runs down whole vectors of rows):
//   qp [D/2][R]     each row's query dim pairs in bf16, 16 rows a vector
//   s  [keys][R]    scores: s[j] += broadcast(key j's dim pair) . qp[pair]: key rows read as stored
//   pp [keys/2][R]  probabilities of keys (2i, 2i + 1) of each row, a bf16 pair
//   vp [keys/2][D]  values of keys (2i, 2i + 1), a bf16 pair per column, in column order
//   o  [R][D]       running numerator: o[r] += broadcast(pp[i][r]) . vp[i]
// Queries and probabilities are rounded to bf16, as the decode kernel's vdpbf16ps path does.

struct DotTileScratch {
  lk::LineVector<uint32_t> qp, pp, vp;
  lk::LineVector<float> s, o;
  TileRowState st;
  const uint16_t* krow[kTileKeys];
  const uint16_t* vrow[kTileKeys];
  DotTileScratch()
      : qp(lk::kTileMaxHeadDim / 2 * lk::kTileRows),
        pp(kTileKeys / 2 * lk::kTileRows),
        vp(kTileKeys / 2 * lk::kTileMaxHeadDim),
        s(kTileKeys * lk::kTileRows),
        o(lk::kTileRows * lk::kTileMaxHeadDim) {}
};

// Scores of KB keys x RV vectors of rows over all D/2 dim pairs: each key's pair is broadcast
// from its row as stored and multiplies RV vectors of rows' pairs.
template <int RV, int KB>
inline void tileScores(const uint32_t* qp, int64_t R, int64_t pairs, const uint16_t* const* krow, float* s) {
  __m512 acc[KB][RV];
  for (int j = 0; j < KB; j++)
    for (int v = 0; v < RV; v++) acc[j][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; p++) {
    __m512bh q[RV];
    for (int v = 0; v < RV; v++) q[v] = (__m512bh)_mm512_load_si512(qp + p * R + 16 * v);
    for (int j = 0; j < KB; j++) {
      uint32_t kw;
      std::memcpy(&kw, krow[j] + 2 * p, sizeof kw);
      const __m512bh k = (__m512bh)_mm512_set1_epi32(int(kw));
      for (int v = 0; v < RV; v++) acc[j][v] = _mm512_dpbf16_ps(acc[j][v], k, q[v]);
    }
  }
  for (int j = 0; j < KB; j++)
    for (int v = 0; v < RV; v++) _mm512_store_ps(s + j * R + 16 * v, acc[j][v]);
}

// All nk slots (a multiple of 16) of a step: KB keys at a time, as many as the registers hold.
template <int RV>
inline void tileScoresAll(const uint32_t* qp, int64_t R, int64_t pairs, const uint16_t* const* krow, int64_t nk,
                          float* s) {
  constexpr int KB = RV == 4 ? 4 : RV >= 2 ? 8 : 16;  // at most 24 accumulators
  for (int64_t j = 0; j < nk; j += KB) tileScores<RV, KB>(qp, R, pairs, krow + j, s + j * R);
}

// o rows [r0, r0 + RB), columns [c0, c0 + 16 * DC): rescaled by their rows' corr, then plus the
// step's probabilities times its values, pair of keys by pair of keys.
template <int RB, int DC>
inline void tileValues(float* o, int64_t D, const uint32_t* pp, int64_t R, const uint32_t* vp, int64_t nPairs,
                       int64_t r0, int64_t c0, const float* corr) {
  __m512 acc[RB][DC];
  for (int r = 0; r < RB; r++) {
    const __m512 c = _mm512_set1_ps(corr[r0 + r]);
    for (int k = 0; k < DC; k++) acc[r][k] = _mm512_mul_ps(_mm512_load_ps(o + (r0 + r) * D + c0 + 16 * k), c);
  }
  for (int64_t i = 0; i < nPairs; i++) {
    __m512bh v[DC];
    for (int k = 0; k < DC; k++) v[k] = (__m512bh)_mm512_load_si512(vp + i * D + c0 + 16 * k);
    for (int r = 0; r < RB; r++) {
      const __m512bh p = (__m512bh)_mm512_set1_epi32(int(pp[i * R + r0 + r]));
      for (int k = 0; k < DC; k++) acc[r][k] = _mm512_dpbf16_ps(acc[r][k], p, v[k]);
    }
  }
  for (int r = 0; r < RB; r++)
    for (int k = 0; k < DC; k++) _mm512_store_ps(o + (r0 + r) * D + c0 + 16 * k, acc[r][k]);
}

// Rows [0, rows) over columns in chunks of 4 vectors (64 columns; a last chunk of 2 for head_dim
// 96 or 160...), 6 rows a tile (24 accumulators), the last rows one tile of their own.
template <int DC>
inline void tileValuesCols(float* o, int64_t D, const uint32_t* pp, int64_t R, const uint32_t* vp, int64_t nPairs,
                           int64_t rows, int64_t c0, const float* corr) {
  int64_t r = 0;
  for (; r + 6 <= rows; r += 6) tileValues<6, DC>(o, D, pp, R, vp, nPairs, r, c0, corr);
  switch (rows - r) {
    case 5: return tileValues<5, DC>(o, D, pp, R, vp, nPairs, r, c0, corr);
    case 4: return tileValues<4, DC>(o, D, pp, R, vp, nPairs, r, c0, corr);
    case 3: return tileValues<3, DC>(o, D, pp, R, vp, nPairs, r, c0, corr);
    case 2: return tileValues<2, DC>(o, D, pp, R, vp, nPairs, r, c0, corr);
    case 1: return tileValues<1, DC>(o, D, pp, R, vp, nPairs, r, c0, corr);
    default: return;
  }
}

// The step's scores of one vector of 16 rows, s[j][v] for slots j < nk at positions k0 + j: masked
// to the rows' ranges where the step reaches past one, scaled, the running max updated, and the
// probabilities rounded to bf16 in pairs (pp) and summed as rounded. The AMX tiles' scratch extends
// this one and shares it.
inline void tileSoftmax(DotTileScratch& t, int64_t R, int64_t v, int64_t k0, int64_t nk, float scale) {
  TileRowState& st = t.st;
  float* s = t.s.data() + 16 * v;
  const __m512i start = _mm512_load_si512(st.start + 16 * v), end = _mm512_load_si512(st.end + 16 * v);
  const bool inside = tileRowsInside(st, 16 * v, k0, nk);
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < nk; j++) {
    __m512 x = _mm512_load_ps(s + j * R);
    if (!inside) {
      const __m512i pos = _mm512_set1_epi32(int32_t(k0 + j));
      const __mmask16 ok = _mm512_cmple_epi32_mask(start, pos) & _mm512_cmplt_epi32_mask(pos, end);
      x = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), ok, x);
      _mm512_store_ps(s + j * R, x);
    }
    mx = _mm512_max_ps(mx, x);
  }
  const __m512 mOld = _mm512_load_ps(st.m + 16 * v);
  const __m512 mNew = _mm512_max_ps(mOld, _mm512_mul_ps(mx, _mm512_set1_ps(scale)));
  // A row with no key in range yet keeps m = -inf; its exponentials are taken against 0, so they
  // (and its corr, and so its numerator) are 0 rather than NaN.
  const __m512 mSafe = _mm512_mask_mov_ps(mNew, _mm512_cmpeq_ps_mask(mNew, _mm512_set1_ps(-INFINITY)), _mm512_setzero_ps());
  const __m512 corr = (__m512)vexpNonPositive((vf)_mm512_sub_ps(mOld, mSafe));
  const __m512 sc = _mm512_set1_ps(scale);
  __m512 sum = _mm512_setzero_ps();
  uint32_t* pp = t.pp.data() + 16 * v;
  for (int64_t j = 0; j < nk; j += 2) {
    const __m256bh e0 = _mm512_cvtneps_pbh((__m512)vexpNonPositive((vf)_mm512_fmsub_ps(_mm512_load_ps(s + j * R), sc, mSafe)));
    const __m256bh e1 =
        _mm512_cvtneps_pbh((__m512)vexpNonPositive((vf)_mm512_fmsub_ps(_mm512_load_ps(s + (j + 1) * R), sc, mSafe)));
    const __m512i w0 = _mm512_cvtepu16_epi32((__m256i)e0), w1 = _mm512_cvtepu16_epi32((__m256i)e1);
    _mm512_store_si512(pp + (j / 2) * R, _mm512_or_si512(w0, _mm512_slli_epi32(w1, 16)));
    sum = _mm512_add_ps(sum, _mm512_add_ps(_mm512_castsi512_ps(_mm512_slli_epi32(w0, 16)),
                                           _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16))));
  }
  _mm512_store_ps(st.l + 16 * v, _mm512_fmadd_ps(_mm512_load_ps(st.l + 16 * v), corr, sum));
  _mm512_store_ps(st.m + 16 * v, mNew);
  _mm512_store_ps(st.corr + 16 * v, corr);
}

// Pairs of value rows (2i, 2i + 1) interleaved column by column: vp[i][c] = V[2i][c] | V[2i+1][c] << 16.
inline void tilePackValues(uint32_t* vp, const uint16_t* const* vrow, int64_t nk, int64_t D) {
  for (int64_t i = 0; i < nk / 2; i++) {
    const uint16_t* a = vrow[2 * i];
    const uint16_t* b = vrow[2 * i + 1];
    for (int64_t c = 0; c < D; c += 16) {
      const __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + c)));
      const __m512i hi = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + c)));
      _mm512_store_si512(vp + i * D + c, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }
}

// Row r's query (head_dim D, fp32) rounded to bf16 into qp [D/2][R], a dim pair a word: the
// queries' layout in the vdpbf16ps and the AMX tiles alike.
inline void tileQueryPairs(uint32_t* qp, int64_t R, int64_t r, const float* q, int64_t D) {
  alignas(64) uint16_t qrow[lk::kTileMaxHeadDim];
  for (int64_t d = 0; d < D; d += 32) _mm512_store_si512(qrow + d, (__m512i)toBf16x32(q + d));
  for (int64_t p = 0; p < D / 2; p++) std::memcpy(&qp[p * R + r], qrow + 2 * p, 4);
}

// What a bf16 tile starts from: its rows' state and queries in pairs (t.st, t.qp), the numerator
// t.o cleared, the union of the rows' key ranges, the sequence's block table and the cache's K and V.
struct Bf16TileStart {
  int32_t lo, hi;
  const int32_t* table;
  const uint16_t* kc;
  const uint16_t* vc;
};
template <class Scratch>
inline Bf16TileStart bf16TileStart(const AttnArgs& a, int64_t t0, int64_t kh, int64_t rows, int64_t R, Scratch& t) {
  const int64_t D = a.cache.headDim;
  Bf16TileStart b;
  tileInitRows(a, t0, kh, rows, R, t.st, b.lo, b.hi,
               [&](int64_t r, const float* q) { tileQueryPairs(t.qp.data(), R, r, q, D); });
  std::fill(t.o.begin(), t.o.begin() + R * D, 0.0f);
  b.table = a.blockTables + int64_t(a.qSeq[t0]) * a.maxBlocksPerSeq;
  b.kc = static_cast<const uint16_t*>(a.cache.k);
  b.vc = static_cast<const uint16_t*>(a.cache.v);
  return b;
}

// Query tokens [t0, t1) of one sequence (a prompt run: see AttentionRunner) against KV head kh,
// their G query heads each a row; the caller has checked lk::tileFits and that the rows fit
// kTileRows.
inline void attentionTileDot(const AttnArgs& a, int64_t t0, int64_t t1, int64_t kh) {
  const KvArgs& c = a.cache;
  const int64_t D = c.headDim, bs = c.blockSize, nKv = c.nKvHeads, G = a.nHeads / nKv;
  const int64_t rows = (t1 - t0) * G, R = (rows + 15) / 16 * 16, RV = R / 16, pairs = D / 2;
  thread_local DotTileScratch t;
  const auto [lo, hi, table, kc, vc] = bf16TileStart(a, t0, kh, rows, R, t);
  for (int64_t k0 = lo / kTileKeys * kTileKeys; k0 < hi; k0 += kTileKeys) {
    const int64_t nk = std::min<int64_t>(kTileKeys, (hi - k0 + 15) / 16 * 16);
    tileStepRows(kc, vc, table, k0, nk, lo, hi, bs, nKv, kh, D, t.krow, t.vrow);
    switch (RV) {
      case 1: tileScoresAll<1>(t.qp.data(), R, pairs, t.krow, nk, t.s.data()); break;
      case 2: tileScoresAll<2>(t.qp.data(), R, pairs, t.krow, nk, t.s.data()); break;
      case 3: tileScoresAll<3>(t.qp.data(), R, pairs, t.krow, nk, t.s.data()); break;
      default: tileScoresAll<4>(t.qp.data(), R, pairs, t.krow, nk, t.s.data()); break;
    }
    const float scale = tileCapScores(a, t.s.data(), R, nk);
    for (int64_t v = 0; v < RV; v++) tileSoftmax(t, R, v, k0, nk, scale);
    tilePackValues(t.vp.data(), t.vrow, nk, D);
    int64_t c0 = 0;
    for (; c0 + 64 <= D; c0 += 64) tileValuesCols<4>(t.o.data(), D, t.pp.data(), R, t.vp.data(), nk / 2, rows, c0, t.st.corr);
    if (c0 < D) tileValuesCols<2>(t.o.data(), D, t.pp.data(), R, t.vp.data(), nk / 2, rows, c0, t.st.corr);
  }
  tileWriteRows(a, t0, kh, rows, t.o.data(), t.st);
}
