// Prompt attention tiles through AMX-BF16 (the amxbf16 build, bf16 cache, head_dim a multiple of
// 32): see attention_tile.h for what a tile is. Included by kernels.cpp inside its variant
// namespace, after attention_tile_dot.h, whose query layout, softmax and value packing it shares.
//
// Why: on the Xeons that have AMX, vdpbf16ps issues at half the FMA's rate, so their prompt tiles
// went through fp32 multiply-adds (about 300 GFLOP/s on two cores, 62% of the FMA's peak), and
// with the products on tiles a long prompt's attention took more time than its matrix products.
// Both of a step's small products fit AMX's shapes, with the tile's rows in the N dimension:
//
//   scores  s [keys][R] += K [keys][D] . qp [D/2][R]     A: 16 keys x 32 dims, K rows as stored
//                                                        B: 16 dim pairs x 16 rows (qp, as the
//                                                           vdpbf16ps tiles lay queries out)
//   values  o [R][D]    += pr [R][keys] . vp [keys/2][D] A: 16 rows x 32 keys of probabilities
//                                                        B: 16 key pairs x 16 columns (vp, the
//                                                           vdpbf16ps tiles' value pairs)
//
// pr is the softmax's pp [keys/2][R] (rows in lanes, a key pair a word) transposed 16 x 16 words
// at a time. Queries and probabilities are rounded to bf16 as in the vdpbf16ps tiles, products are
// exact and summed in fp32; each sum is one element of a C tile computed in the instruction's own
// order whichever tile, row or call it comes in, so a token's output does not depend on how its
// prompt was cut. A step takes 32 or 64 slots (values step 32 keys at a time); slots past the
// tile's keys read zero rows and are masked to probability 0, which adds exact zeros.

template <class Tiles>
struct AmxAttention {
  // The vdpbf16ps tiles' scratch (the same queries, scores, pairs and numerator), plus each row's
  // probabilities in key order (pr) and the key rows copied where a group is not in place (kg).
  struct Scratch : DotTileScratch {
    lk::LineVector<uint16_t> pr, kg;
    const uint16_t* ktile[kTileKeys / 16];  // each 16-key group's first row, 16 rows D apart
    Scratch() : pr(lk::kTileRows * kTileKeys), kg(kTileKeys * lk::kTileMaxHeadDim) {}
  };

  // Scores of KT groups of 16 keys (from group j) x RT vectors of 16 rows (from vector v), over
  // all D: C tiles 0-3 (key group i, row vector k at 2i + k), A tiles 4-5 (keys), B 6-7 (queries).
  template <int KT, int RT>
  static void scoreBlock(Scratch& t, int64_t R, int64_t D, int64_t j, int64_t v) {
    const int64_t qStride = R * 4, kStride = D * 2;
    Tiles::template zero<0>();
    if constexpr (RT > 1) Tiles::template zero<1>();
    if constexpr (KT > 1) Tiles::template zero<2>();
    if constexpr (KT > 1 && RT > 1) Tiles::template zero<3>();
    for (int64_t d = 0; d < D; d += 32) {
      const uint32_t* q = t.qp.data() + (d / 2) * R + 16 * v;
      Tiles::template load<4>(t.ktile[j] + d, kStride);
      Tiles::template load<6>(q, qStride);
      if constexpr (RT > 1) Tiles::template load<7>(q + 16, qStride);
      Tiles::template dp<0, 4, 6>();
      if constexpr (RT > 1) Tiles::template dp<1, 4, 7>();
      if constexpr (KT > 1) {
        Tiles::template load<5>(t.ktile[j + 1] + d, kStride);
        Tiles::template dp<2, 5, 6>();
        if constexpr (RT > 1) Tiles::template dp<3, 5, 7>();
      }
    }
    float* s = t.s.data() + (16 * j) * R + 16 * v;
    Tiles::template store<0>(s, qStride);
    if constexpr (RT > 1) Tiles::template store<1>(s + 16, qStride);
    if constexpr (KT > 1) Tiles::template store<2>(s + 16 * R, qStride);
    if constexpr (KT > 1 && RT > 1) Tiles::template store<3>(s + 16 * R + 16, qStride);
  }

  // o rows of RT vectors (from vector v) x CT groups of 16 columns (from column c0), plus the
  // step's nk probabilities times its values: C tiles 0-3 (row vector i, column group k at 2i + k),
  // A tiles 4-5 (probabilities), B 6-7 (value pairs).
  template <int RT, int CT>
  static void valueBlock(Scratch& t, int64_t D, int64_t nk, int64_t v, int64_t c0) {
    const int64_t oStride = D * 4, pStride = kTileKeys * 2, vStride = D * 4;
    float* o = t.o.data() + (16 * v) * D + c0;
    Tiles::template load<0>(o, oStride);
    if constexpr (CT > 1) Tiles::template load<1>(o + 16, oStride);
    if constexpr (RT > 1) Tiles::template load<2>(o + 16 * D, oStride);
    if constexpr (RT > 1 && CT > 1) Tiles::template load<3>(o + 16 * D + 16, oStride);
    for (int64_t k = 0; k < nk; k += 32) {
      const uint32_t* vp = t.vp.data() + (k / 2) * D + c0;
      const uint16_t* p = t.pr.data() + (16 * v) * kTileKeys + k;
      Tiles::template load<4>(p, pStride);
      Tiles::template load<6>(vp, vStride);
      if constexpr (CT > 1) Tiles::template load<7>(vp + 16, vStride);
      Tiles::template dp<0, 4, 6>();
      if constexpr (CT > 1) Tiles::template dp<1, 4, 7>();
      if constexpr (RT > 1) {
        Tiles::template load<5>(p + 16 * kTileKeys, pStride);
        Tiles::template dp<2, 5, 6>();
        if constexpr (CT > 1) Tiles::template dp<3, 5, 7>();
      }
    }
    Tiles::template store<0>(o, oStride);
    if constexpr (CT > 1) Tiles::template store<1>(o + 16, oStride);
    if constexpr (RT > 1) Tiles::template store<2>(o + 16 * D, oStride);
    if constexpr (RT > 1 && CT > 1) Tiles::template store<3>(o + 16 * D + 16, oStride);
  }

  // Each 16-key group's rows as one tile operand: in place where they are 16 consecutive rows of
  // the cache (a whole group inside one block and inside the tile's keys), else copied to kg.
  static void keyTiles(Scratch& t, int64_t nk, int64_t D) {
    for (int64_t j = 0; j < nk; j += 16) {
      const uint16_t* first = t.krow[j];
      bool inPlace = true;
      for (int i = 1; i < 16 && inPlace; i++) inPlace = t.krow[j + i] == first + i * D;
      if (inPlace) {
        t.ktile[j / 16] = first;
        continue;
      }
      uint16_t* g = t.kg.data() + j * D;
      for (int i = 0; i < 16; i++) std::memcpy(g + i * D, t.krow[j + i], D * 2);
      t.ktile[j / 16] = g;
    }
  }

  // pp [keys/2][R] (words: a key pair of one row) into pr [R][kTileKeys] (bf16: a row's keys in
  // order), 16 pairs x 16 rows at a time.
  static void transposeProbabilities(Scratch& t, int64_t R, int64_t nk) {
    for (int64_t v = 0; v < R / 16; v++)
      for (int64_t i = 0; i < nk / 2; i += 16) {
        __m512i w[16];
        for (int k = 0; k < 16; k++) w[k] = _mm512_load_si512(t.pp.data() + (i + k) * R + 16 * v);
        transpose16(w);
        for (int r = 0; r < 16; r++) _mm512_store_si512(t.pr.data() + (16 * v + r) * kTileKeys + 2 * i, w[r]);
      }
  }

  // Every row of o times its row's corr (the step's rescale), before the step's values add in.
  static void rescale(Scratch& t, int64_t R, int64_t D) {
    for (int64_t r = 0; r < R; r++) {
      const __m512 c = _mm512_set1_ps(t.st.corr[r]);
      float* o = t.o.data() + r * D;
      for (int64_t d = 0; d < D; d += 16) _mm512_store_ps(o + d, _mm512_mul_ps(_mm512_load_ps(o + d), c));
    }
  }

  // Query tokens [t0, t1) of one sequence against KV head kh, their G query heads each a row; the
  // caller has checked lk::tileFits, a bf16 cache and head_dim a multiple of 32.
  static void run(const AttnArgs& a, int64_t t0, int64_t t1, int64_t kh) {
    const KvArgs& c = a.cache;
    const int64_t D = c.headDim, bs = c.blockSize, nKv = c.nKvHeads, G = a.nHeads / nKv;
    const int64_t rows = (t1 - t0) * G, R = (rows + 15) / 16 * 16, RV = R / 16;
    thread_local Scratch t;
    const auto [lo, hi, table, kc, vc] = bf16TileStart(a, t0, kh, rows, R, t);
    Tiles::configure();
    for (int64_t k0 = lo / kTileKeys * kTileKeys; k0 < hi; k0 += kTileKeys) {
      const int64_t nk = std::min<int64_t>(kTileKeys, (hi - k0 + 31) / 32 * 32);
      tileStepRows(kc, vc, table, k0, nk, lo, hi, bs, nKv, kh, D, t.krow, t.vrow);
      keyTiles(t, nk, D);
      const int64_t KG = nk / 16;
      for (int64_t j = 0; j < KG; j += 2)
        for (int64_t v = 0; v < RV; v += 2) {
          const bool twoKeys = j + 1 < KG, twoRows = v + 1 < RV;
          if (twoKeys && twoRows) scoreBlock<2, 2>(t, R, D, j, v);
          else if (twoKeys) scoreBlock<2, 1>(t, R, D, j, v);
          else if (twoRows) scoreBlock<1, 2>(t, R, D, j, v);
          else scoreBlock<1, 1>(t, R, D, j, v);
        }
      const float scale = tileCapScores(a, t.s.data(), R, nk);
      for (int64_t v = 0; v < RV; v++) tileSoftmax(t, R, v, k0, nk, scale);
      transposeProbabilities(t, R, nk);
      tilePackValues(t.vp.data(), t.vrow, nk, D);
      rescale(t, R, D);
      for (int64_t v = 0; v < RV; v += 2)
        for (int64_t c0 = 0; c0 < D; c0 += 32)  // D is a multiple of 32: column groups in pairs
          v + 1 < RV ? valueBlock<2, 2>(t, D, nk, v, c0) : valueBlock<1, 2>(t, D, nk, v, c0);
    }
    Tiles::release();
    tileWriteRows(a, t0, kh, rows, t.o.data(), t.st);
  }
};
