// The row path on 512-bit vectors (the AVX-512 variants): byte dots at that width, the tokens'
// activations held in registers, and Q4_K rows (rowsQ4K) with the activations in its order
// (q4kOrder). Included by quant_kernels.cpp inside its variant namespace, in its AVX-512 builds.
#pragma once

// dotBytes on 512 bits: lane i sums u[4i + k] * s[4i + k], u unsigned and s signed bytes (without VNNI
// the pairwise 16-bit sums must not saturate: every caller's u is at most 63).
inline __m512i dotBytes512(__m512i u, __m512i s) {
#if defined(__AVX512VNNI__)
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
#else
  return _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1));
#endif
}

// IQ4_NL's 16 levels plus 128 (unsigned bytes for the unsigned-by-signed dot) in every 128-bit lane,
// for a byte shuffle by nibble. The table is built at compile time: the row paths that use it run
// once per four rows.
struct LiftedLevels {
  alignas(16) uint8_t v[16];
};
constexpr LiftedLevels liftedLevelTable(const int8_t* levels) {
  LiftedLevels t{};
  for (int i = 0; i < 16; i++) t.v[i] = uint8_t(levels[i] + 128);
  return t;
}
inline __m512i liftedIq4nlLevels() {
  static constexpr LiftedLevels kLifted = liftedLevelTable(lk::kIq4nlLevels);
  return _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(kLifted.v)));
}
// MXFP4's doubled e2m1 levels, lifted the same way.
inline __m512i liftedMxfp4Levels() {
  static constexpr LiftedLevels kLifted = liftedLevelTable(lk::kMxfp4Levels);
  return _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(kLifted.v)));
}

// Tokens t0 .. t0 + T − 1 of a row path's batch: each one's block scales d, its d·Σq per 32 values,
// and its int8 activations in the path's order (xo, cols bytes a token).
template <int T>
struct TokenActs {
  const float* d[T];
  const float* ds32[T];
  const int8_t* q[T];
  TokenActs(const QuantMatmulArgs& a, const int8_t* xo, int64_t t0) {
    for (int t = 0; t < T; t++) {
      const uint8_t* act = a.xq + (t0 + t) * lk::actStride(a.cols);
      d[t] = lk::actD(act);
      ds32[t] = lk::actDs32(act, a.cols);
      q[t] = xo + (t0 + t) * a.cols;
    }
  }
};

// out[t][rows[n]] = the lane sum of v[n] plus the bias, for the N rows of a row path. Four rows take
// their sums at once: pairwise unpacks and adds leave each 128-bit lane with the four rows' partial
// sums, and three adds of lanes finish them (32-value formats, 576 columns, in cache: 3-4% of the
// call against four separate reductions).
template <int N>
inline void storeRowSums(const QuantMatmulArgs& a, const int64_t* rows, const __m512* v, int64_t t = 0) {
  float sum[N];
  if constexpr (N == 4) {
    const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(v[0], v[1]), _mm512_unpackhi_ps(v[0], v[1]));
    const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(v[2], v[3]), _mm512_unpackhi_ps(v[2], v[3]));
    const __m512d abd = _mm512_castps_pd(ab), cdd = _mm512_castps_pd(cd);
    const __m512 q = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(abd, cdd)),
                                   _mm512_castpd_ps(_mm512_unpackhi_pd(abd, cdd)));  // [r0 r1 r2 r3] a lane
    const __m256 h =
        _mm256_add_ps(_mm512_castps512_ps256(q), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(q), 1)));
    _mm_storeu_ps(sum, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
  } else {
    for (int n = 0; n < N; n++) sum[n] = _mm512_reduce_add_ps(v[n]);
  }
  float* out = a.out + t * a.rows;
  for (int n = 0; n < N; n++) out[rows[n]] = sum[n] + (a.bias ? a.bias[rows[n]] : 0.0f);
}

// N Q4_K rows against T tokens (t0 on) with 512-bit vectors, two blocks a vector and no lane sums
// until the rows end (one token: N = 4 rows a quarter of the slice apart, four sequential streams
// whose loads are in flight together; one stream left a thread at 44-50% of the streaming read,
// four at 90%, alternating runs, one thread; the activations and their scales are loaded once for
// the N. A small batch: N = 1 and T = 4, each group's quants decoded once for the four tokens).
// A 64-byte load of quants holds blocks 0 and 2 (or 4 and 6) in its low nibbles and 1 and 3
// (5 and 7) in its high ones; the token's activations are laid out once per call in that
// order (q4kOrder), so each half is one AND (and a shift) against 64 activation bytes read as they
// lie. The 16 int32 lanes of a dot (8 a block) are converted and multiplied by their block's scale
// d·sc·dx, spread two blocks a vector by a permute from one vector of the group's eight; the mins
// (dmin·m times the activations' d·Σq per block) come off the upper lanes of an accumulator. The
// group's scales and mins are decoded from their 12 packed bytes with vector shifts and masks.
// Q5_K runs the same with its fifth bits: qh[l] holds bit b for element l of block b, so each
// half of a vector (blocks b and b + 2) takes its bit by a shift of the 32 qh bytes, repeated in
// both halves.
template <int QT, int N, int T = 1>
inline void rowsQ4K(const QuantMatmulArgs& a, const int8_t* xo, const int64_t* rows, int64_t t0 = 0) {
  constexpr bool kFive = QT == lk::kQ5_K;
  constexpr int64_t GB = blockBytes(QT), QS = kFive ? 48 : 16;
  const int64_t ng = a.cols / 256;
  const uint8_t* w[N];
  for (int n = 0; n < N; n++) w[n] = a.w + rows[n] * ng * GB;
  const TokenActs<T> x(a, xo, t0);
  const __m512i low4 = _mm512_set1_epi8(15);
  // Vector v of a group holds blocks (0, 2), (1, 3), (4, 6), (5, 7).
  const __m512i spread[4] = {
      _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2),
      _mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3),
      _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6),
      _mm512_setr_epi32(5, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7)};
  const __m512i dLanes = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  // Q5_K: the shift that brings block j's bit (j = 0, 1, 4, 5 in the low half; j + 2 in the high) down.
  __m512i fifthShift[4];
  for (int v = 0; v < 4 && kFive; v++) {
    const int j = (v / 2) * 4 + v % 2;
    fifthShift[v] = _mm512_inserti64x4(_mm512_set1_epi16(short(j)), _mm256_set1_epi16(short(j + 2)), 1);
  }
  const __m128i scShift = _mm_setr_epi32(0, 0, 0, 4);
  const __m128i scLowMask = _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f);
  const __m128i scHighMask = _mm_setr_epi32(0, 0x30303030, 0, 0x30303030);
  // Two accumulators a row and token (by the dot's place in its half); the mins come off the
  // first one's upper lanes, which the final lane sum adds in with the rest.
  __m512 acc[N][T][2];
  for (int n = 0; n < N; n++)
    for (int t = 0; t < T; t++) acc[n][t][0] = acc[n][t][1] = _mm512_setzero_ps();
  for (int64_t gi = 0; gi < ng; gi++) {
    __m512 xsc[T];  // [dx per block | d·Σq per block], a token's
    for (int t = 0; t < T; t++)
      xsc[t] = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm256_loadu_ps(x.d[t] + gi * 8))),
                                                   _mm256_castps_pd(_mm256_loadu_ps(x.ds32[t] + gi * 8)), 1));
    for (int n = 0; n < N; n++) {
      const uint8_t* g = w[n] + gi * GB;
      prefetchLines<GB>(g + kStreamAhead);
      // Bytes 4-15 as dwords s0 s1 s2: [sc 0-3, sc 4-7, m 0-3, m 4-7] = [s0 & 63, (s2 & 15) | (s0 >> 6
      // << 4), s1 & 63, (s2 >> 4) | (s1 >> 6 << 4)] bytewise.
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 4));
      const __m128i low = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(raw, _MM_SHUFFLE(2, 1, 2, 0)), scShift), scLowMask);
      const __m128i high = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(raw, _MM_SHUFFLE(1, 1, 0, 0)), 2), scHighMask);
      const __m512 scm = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_or_si128(low, high)));
      uint32_t dd;
      std::memcpy(&dd, g, 4);
      const __m512 d = _mm512_permutexvar_ps(dLanes, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128(int(dd)))));
      const __m512 ws = _mm512_mul_ps(scm, d);  // [d·sc per block | dmin·m per block]
      __m512 v[T];                              // [d·sc·dx per block | dmin·m·d·Σq per block], a token's
      for (int t = 0; t < T; t++) {
        v[t] = _mm512_mul_ps(ws, xsc[t]);
        acc[n][t][0] = _mm512_mask_sub_ps(acc[n][t][0], __mmask16(0xff00), acc[n][t][0], v[t]);
      }
      __m512i qh = _mm512_setzero_si512();
      if constexpr (kFive) qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 16)));
      for (int h = 0; h < 2; h++) {
        const __m512i qs = _mm512_loadu_si512(g + QS + 64 * h);
        __m512i wv[2] = {_mm512_and_si512(qs, low4), _mm512_and_si512(_mm512_srli_epi16(qs, 4), low4)};
        if constexpr (kFive) {
          for (int k = 0; k < 2; k++) {
            // Blocks 4h + k (low half) and 4h + k + 2 (high half).
            const __m512i bit = _mm512_and_si512(_mm512_srlv_epi16(qh, fifthShift[2 * h + k]), _mm512_set1_epi8(1));
            wv[k] = _mm512_or_si512(wv[k], _mm512_slli_epi16(bit, 4));
          }
        }
        for (int t = 0; t < T; t++)
          for (int k = 0; k < 2; k++) {
            const __m512i xv = _mm512_loadu_si512(x.q[t] + gi * 256 + 128 * h + 64 * k);
            const __m512i p = dotBytes512(wv[k], xv);
            acc[n][t][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_permutexvar_ps(spread[2 * h + k], v[t]), acc[n][t][k]);
          }
      }
    }
  }
  for (int t = 0; t < T; t++) {
    __m512 row[N];
    for (int n = 0; n < N; n++) row[n] = _mm512_add_ps(acc[n][t][0], acc[n][t][1]);
    storeRowSums<N>(a, rows, row, t0 + t);
  }
}

// A token's int8 activations with each 256-value group's blocks in rowsQ4K's order: 0 2 1 3 4 6 5 7.
inline void q4kOrder(const int8_t* xq, int64_t cols, int8_t* out) {
  static constexpr int kFrom[8] = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int64_t g = 0; g < cols; g += 256)
    for (int i = 0; i < 8; i++) std::memcpy(out + g + 32 * i, xq + g + 32 * kFrom[i], 32);
}
