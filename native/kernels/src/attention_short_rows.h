// Decode attention for heads whose rows fill at most one vector: head_dim W (8 on 256-bit vectors,
// 16 on 512-bit ones) or, on 512-bit vectors, W / 2 = 8 (the built-in stories260K model's heads).
// Included by decode_attention_fma.h (inside the variant namespace), after reduceW.
//
// Why: the general kernels take a head_dim as whole vectors plus a scalar tail, so a head_dim of 8
// on 512-bit vectors ran entirely in the scalar tail, and one of W paid a horizontal sum for every
// key and head. stories260K's decode attention (batch 32, 256 keys, f32 cache) took 0.38-0.44 ms a
// call there, 8-12% of the streaming read, most of its serving step (BENCHMARKS.md).
//
// Scores: W keys at a time, each key's row loaded once for all the group's heads. A row of W
// elements is one vector: its products with the query go through reduceW's transposing tree, which
// leaves key l's score in lane l. Rows of W / 2 elements go two to a vector (any two rows: the halves
// are loaded separately, so the interleaved order of a step's keys stays), multiplied by the query
// repeated in both halves; three rounds of pairwise adds, each summing the two halves of every
// row's remaining partial sums, leave 16 scores in one vector, put in key order by one permute.
// Values (half-vector rows only; rows of W take groupValues' vector path): each pair of rows is
// multiplied by its two keys' probabilities, each spread over its half by one permute.
#pragma once

// Whether shortScores takes heads of head_dim D (and shortValues8 their values where D = 8 on a
// 512-bit build): the x86 vector builds only (the portable build's 4 lanes gain nothing over its
// pair kernels).
inline bool shortRows(int64_t D) {
#if defined(__AVX512F__)
  return D == 16 || D == 8;
#elif defined(__AVX2__)
  return D == 8;
#else
  (void)D;
  return false;
#endif
}

#if defined(__AVX512F__)
// Rows a and b of 8 elements (element offsets into base) as the low and high halves of a vector.
template <int DT>
inline __m512 loadRowPair(const void* base, int64_t a, int64_t b) {
  if constexpr (DT == 0) {
    const float* f = static_cast<const float*>(base);
    const __m256d lo = _mm256_castps_pd(_mm256_loadu_ps(f + a)), hi = _mm256_castps_pd(_mm256_loadu_ps(f + b));
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(lo), hi, 1));
  } else {
    const uint16_t* h = static_cast<const uint16_t*>(base);
    const __m256i x = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + a))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + b)), 1);
    if constexpr (DT == 1) return _mm512_cvtph_ps(x);
    else return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(x), 16));
  }
}

// The halving rounds of rows of 8 in 16 lanes. Round 1 takes vectors whose 8-lane halves are rows:
// for each pair (a, b), lanes of the first 4-lane quarter of a row get a's two quarters summed, those
// of the second quarter b's, through two-vector permutes. Rounds 2 and 3 do the same within each
// 128-bit lane (pairs of lanes, then single lanes), where shuffles suffice.
inline __m512 halveRows8(__m512 a, __m512 b) {
  const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
  const __m512i hi = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
  return _mm512_add_ps(_mm512_permutex2var_ps(a, lo, b), _mm512_permutex2var_ps(a, hi, b));
}
inline __m512 halveRows4(__m512 a, __m512 b) {
  return _mm512_add_ps(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}
inline __m512 halveRows2(__m512 a, __m512 b) {
  return _mm512_add_ps(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}
// After the three rounds on vectors holding keys (2t, 2t + 1), t = 0..7, lane 4c + i holds key
// 4i + kQuarter[c] (the first round puts key 4i's, 4i + 2's, 4i + 1's and 4i + 3's partial sums in
// quarters 0 to 3, kQuarter = {0, 2, 1, 3}): key k comes from lane 4 * kQuarter[k % 4] + k / 4.

// 16 scores of one head from its 8 products (vectors of keys 2t and 2t + 1), in key order.
inline __m512 rowPairScores(const __m512* p) {
  const __m512 r0 = halveRows4(halveRows8(p[0], p[1]), halveRows8(p[2], p[3]));
  const __m512 r1 = halveRows4(halveRows8(p[4], p[5]), halveRows8(p[6], p[7]));
  const __m512i order = _mm512_setr_epi32(0, 8, 4, 12, 1, 9, 5, 13, 2, 10, 6, 14, 3, 11, 7, 15);
  return _mm512_permutexvar_ps(order, halveRows2(r0, r1));
}
#endif

// Scores of G heads (q: [G, D], natural order) over n keys of D = W or W / 2 elements.
template <int DT>
inline void shortScores(const float* q, int64_t G, int64_t D, const void* kBase, const int64_t* rows, int64_t off,
                        int64_t n, float scale, float* scores) {
  int64_t j = 0;
#if defined(__AVX512F__)
  if (D == 8) {
    for (; j + W <= n; j += W) {
      __m512 k[8];
      for (int t = 0; t < 8; t++) k[t] = loadRowPair<DT>(kBase, rows[j + 2 * t] + off, rows[j + 2 * t + 1] + off);
      for (int64_t g = 0; g < G; g++) {
        const __m512 q8 = _mm512_castps256_ps512(_mm256_loadu_ps(q + g * D));
        const __m512 qq = _mm512_mul_ps(_mm512_shuffle_f32x4(q8, q8, 0x44), _mm512_set1_ps(scale));
        __m512 p[8];
        for (int t = 0; t < 8; t++) p[t] = _mm512_mul_ps(k[t], qq);
        _mm512_storeu_ps(scores + g * kChunk + j, rowPairScores(p));
      }
    }
  } else
#endif
  {
    for (; j + W <= n; j += W) {
      vf k[W];
      for (int t = 0; t < W; t++) k[tileAcc(t)] = loadw<DT>(kBase, rows[j + t] + off);
      for (int64_t g = 0; g < G; g++) {
        const vf qs = loadf(q + g * D) * scale;
        vf p[W];
        for (int t = 0; t < W; t++) p[t] = k[t] * qs;
        storef(scores + g * kChunk + j, reduceW(p));
      }
    }
  }
  for (; j < n; j++)  // the last keys of a range: one at a time
    for (int64_t g = 0; g < G; g++) {
      float s = 0;
      for (int64_t i = 0; i < D; i++) s += q[g * D + i] * loadw1<DT>(kBase, rows[j] + off + i);
      scores[g * kChunk + j] = s * scale;
    }
}

#if defined(__AVX512F__)
// acc[g, :] += sum_j p[g, j] * V_j for G heads over n keys of 8 elements: rows two to a vector,
// four accumulators a head (one FMA chain would wait on its own latency).
template <int DT>
inline void shortValues8(float* acc, int64_t G, const void* vBase, const int64_t* rows, int64_t off, int64_t n,
                         const float* p) {
  int64_t j = 0;
  for (; j + W <= n; j += W) {
    __m512 v[8];
    for (int t = 0; t < 8; t++) v[t] = loadRowPair<DT>(vBase, rows[j + 2 * t] + off, rows[j + 2 * t + 1] + off);
    for (int64_t g = 0; g < G; g++) {
      const __m512 pg = _mm512_loadu_ps(p + g * kChunk + j);
      __m512 o[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      for (int t = 0; t < 8; t++) {
        // Key 2t's probability in the low half, key 2t + 1's in the high half.
        const __m512i spread = _mm512_set_epi32(2 * t + 1, 2 * t + 1, 2 * t + 1, 2 * t + 1, 2 * t + 1, 2 * t + 1,
                                                2 * t + 1, 2 * t + 1, 2 * t, 2 * t, 2 * t, 2 * t, 2 * t, 2 * t, 2 * t, 2 * t);
        o[t % 4] = _mm512_fmadd_ps(_mm512_permutexvar_ps(spread, pg), v[t], o[t % 4]);
      }
      const __m512 sum = _mm512_add_ps(_mm512_add_ps(o[0], o[1]), _mm512_add_ps(o[2], o[3]));
      const __m256 halves = _mm256_add_ps(_mm512_castps512_ps256(sum),
                                          _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sum), 1)));
      _mm256_storeu_ps(acc + g * 8, _mm256_add_ps(_mm256_loadu_ps(acc + g * 8), halves));
    }
  }
  for (; j < n; j++)
    for (int64_t g = 0; g < G; g++) {
      const float pj = p[g * kChunk + j];
      for (int64_t i = 0; i < 8; i++) acc[g * 8 + i] += pj * loadw1<DT>(vBase, rows[j] + off + i);
    }
}
#endif
