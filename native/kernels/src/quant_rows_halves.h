// The row path on 512-bit vectors for the K-quants with a scale per 16 values (Q6_K, Q3_K, Q2_K).
// Included by quant_kernels.cpp inside its variant namespace, after quant_rows_zmm.h.
#pragma once

// N rows of a K-quant with a scale per 16 values (Q6_K, Q3_K, Q2_K) against T tokens (t0 on),
// rowsQ4K's way (one token: N rows a quarter of the slice apart; a small batch: one row, four
// tokens). Each 128-value half of a group is two 512-bit vectors read as the activations lie, a
// dot's lanes 4k..4k+3 one 16-value scale group, scaled by d·sc·dx spread from one vector of the
// group's 16; the offset (Q6_K's 32, Q3_K's 4) or min (Q2_K's dmin·m) comes off against the
// activations' d·Σq of each 16 values (their ds16, put in scale order by one permute). How a
// half's two vectors are built:
//   Q6_K: its 64 ql bytes hold values 0-63 in their low nibbles (0-31 from bytes 0-31, 32-63 from
//     bytes 32-63) and 64-127 in their high ones; its 32 qh bytes, repeated in both 256-bit halves,
//     give each its top two bits by one variable shift (0 and 2 for the low vector, 4 and 6 for
//     the high).
//   Q3_K and Q2_K: its 32 qs bytes, repeated in both 256-bit halves, hold values 32j..32j+31 at
//     bits 2j (one variable shift: 0 and 2, then 4 and 6); Q3_K's third bit of value 128n + 32j + l
//     is bit 4n + j of hmask[l] (the 32 hmask bytes repeated, one more variable shift).
template <int QT, int N, int T = 1>
inline void rowsHalves(const QuantMatmulArgs& a, const int64_t* rows, int64_t t0 = 0) {
  constexpr int64_t GB = blockBytes(QT);
  const int64_t ng = a.cols / 256;
  const uint8_t* w[N];
  for (int n = 0; n < N; n++) w[n] = a.w + rows[n] * ng * GB;
  const int8_t* xq[T];
  const float* xd[T];
  const float* s16[T];
  for (int t = 0; t < T; t++) {
    const uint8_t* act = a.xq + (t0 + t) * lk::actStride(a.cols);
    xq[t] = lk::actQ(act, a.cols);
    xd[t] = lk::actD(act);
    s16[t] = lk::actDs16(act, a.cols);
  }
  const __m512i low4 = _mm512_set1_epi8(15), three = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1);
  auto shifts = [](int lo, int hi) { return _mm512_inserti64x4(_mm512_set1_epi16(short(lo)), _mm256_set1_epi16(short(hi)), 1); };
  const __m512i shift2[2] = {shifts(0, 2), shifts(4, 6)};
  const __m512i ds16Order = _mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15);
  const __m512i blockOf = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  // Vector v of a group (half v / 2, its first or second 64 values) holds scale groups 4v..4v+3.
  __m512i spread[4];
  for (int v = 0; v < 4; v++)
    spread[v] = _mm512_setr_epi32(4 * v, 4 * v, 4 * v, 4 * v, 4 * v + 1, 4 * v + 1, 4 * v + 1, 4 * v + 1, 4 * v + 2,
                                  4 * v + 2, 4 * v + 2, 4 * v + 2, 4 * v + 3, 4 * v + 3, 4 * v + 3, 4 * v + 3);
  // Two accumulators a row and token; the offsets come off the first.
  __m512 acc[N][T][2];
  for (int n = 0; n < N; n++)
    for (int t = 0; t < T; t++) acc[n][t][0] = acc[n][t][1] = _mm512_setzero_ps();
  for (int64_t gi = 0; gi < ng; gi++) {
    __m512 dx[T], sums[T];  // a token's dx per 16 values, and its d·Σq per 16 values
    for (int t = 0; t < T; t++) {
      dx[t] = _mm512_permutexvar_ps(blockOf, _mm512_castps256_ps512(_mm256_loadu_ps(xd[t] + gi * 8)));
      sums[t] = _mm512_permutexvar_ps(ds16Order, _mm512_loadu_ps(s16[t] + gi * 16));
    }
    for (int n = 0; n < N; n++) {
      const uint8_t* g = w[n] + gi * GB;
      prefetchLines<GB>(g + kStreamAhead);
      __m512 sc, off;  // d·scale per 16 values, and what each subtracts per unit of d·Σq
      if constexpr (QT == lk::kQ6_K) {
        sc = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 192)))),
                           _mm512_set1_ps(half(g + 208)));
        off = _mm512_mul_ps(sc, _mm512_set1_ps(32.0f));
      } else if constexpr (QT == lk::kQ3_K) {
        sc = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q3kScaleBytes(g))), _mm512_set1_ps(half(g + 108)));
        off = _mm512_mul_ps(sc, _mm512_set1_ps(4.0f));
      } else {
        // Scale in the low nibble of bytes 0-15, min in the high.
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(g));
        const __m128i m4 = _mm_set1_epi8(15);
        sc = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(raw, m4))), _mm512_set1_ps(half(g + 80)));
        off = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(raw, 4), m4))),
                            _mm512_set1_ps(half(g + 82)));
      }
      __m512 sx[T];
      for (int t = 0; t < T; t++) {
        acc[n][t][0] = _mm512_fnmadd_ps(off, sums[t], acc[n][t][0]);
        sx[t] = _mm512_mul_ps(sc, dx[t]);
      }
      for (int h = 0; h < 2; h++) {
        __m512i wv[2];
        if constexpr (QT == lk::kQ6_K) {
          const __m512i ql = _mm512_loadu_si512(g + 64 * h);
          const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 128 + 32 * h)));
          const __m512i nib[2] = {_mm512_and_si512(ql, low4), _mm512_and_si512(_mm512_srli_epi16(ql, 4), low4)};
          for (int k = 0; k < 2; k++)
            wv[k] = _mm512_or_si512(nib[k], _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift2[k]), three), 4));
        } else {
          constexpr int64_t QS = QT == lk::kQ3_K ? 32 : 16;
          const __m512i qs = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + QS + 32 * h)));
          for (int k = 0; k < 2; k++) wv[k] = _mm512_and_si512(_mm512_srlv_epi16(qs, shift2[k]), three);
          if constexpr (QT == lk::kQ3_K) {
            const __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g)));
            for (int k = 0; k < 2; k++) {
              const __m512i bits = _mm512_and_si512(_mm512_srlv_epi16(hm, shifts(4 * h + 2 * k, 4 * h + 2 * k + 1)), one);
              wv[k] = _mm512_or_si512(wv[k], _mm512_slli_epi16(bits, 2));
            }
          }
        }
        for (int t = 0; t < T; t++)
          for (int k = 0; k < 2; k++) {
            const __m512i xv = _mm512_loadu_si512(xq[t] + gi * 256 + 128 * h + 64 * k);
            const __m512i p = dotBytes512(wv[k], xv);
            acc[n][t][k] =
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_permutexvar_ps(spread[2 * h + k], sx[t]), acc[n][t][k]);
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
