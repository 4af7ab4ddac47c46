// Decode attention's score and value kernels on a bf16 cache through vdpbf16ps (the AVX-512-BF16
// builds). Included by kernels.cpp inside its variant namespace, after decode_attention_step.h.
#pragma once

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
