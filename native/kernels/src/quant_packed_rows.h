// The row path on weights packed with 16 rows in the lanes (quant_pack.h): Q8_0, Q4_0 and Q5_0
// against up to four tokens at once, AVX-512 VNNI builds only (included by quant_kernels.cpp inside
// the variant's namespace, where prefetchLines and the activations' layout are defined).
//
// Per block of a group of 16 rows: one f16 vector of the rows' scales; per 64-byte vector of
// quants one vpdpbusd a token (two for the nibble formats: low and high nibbles), the token's four
// matching int8 activations broadcast from memory; then one conversion and one FMA per token into
// 16 row sums. The format's offset (Q8_0's 128 from its unsigned storage, Q4_0's 8, Q5_0's 16)
// meets the activations' d·Σq per block in a second accumulator, taken off once at the end.
#pragma once

#if defined(LK_ROW_Q4K_512) && defined(__AVX512VNNI__)
#define LK_PACKED_ROWS 1

// acc += the 4-byte dot products of the unsigned bytes u with the four signed bytes at s,
// broadcast to every lane from memory (inline assembly: GCC copies the accumulator around the
// intrinsic, and would load and broadcast the four bytes as an instruction of its own).
inline void dpbusdQuad(__m512i& acc, __m512i u, const int8_t* s) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(u), "m"(*reinterpret_cast<const int32_t*>(s)));
}

// A Q5_0 block's 64-bit mask of fifth bits (a mask-register load).
inline __mmask64 fifthBits(const uint8_t* p) {
  uint64_t m;
  std::memcpy(&m, p, 8);
  return __mmask64(m);
}

// How far ahead of a group's block the packed stream is asked for (one sequential stream a thread).
#ifndef LK_PACKED_AHEAD
#define LK_PACKED_AHEAD 2048
#endif
constexpr int64_t kPackedAhead = LK_PACKED_AHEAD;

// S row groups (groups[0..S)) of a packed matrix against tokens t0 .. t0 + T − 1, their blocks
// read side by side (S sequential streams).
template <int QT, int T, int S>
inline void packedGroupsT(const QuantMatmulArgs& a, const uint8_t* packed, const int64_t* groups, int64_t t0) {
  constexpr int64_t PB = lk::kPackRows * blockBytes(QT);  // a block of a group
  constexpr int64_t kValues = QT == lk::kQ5_0 ? 96 : 32;
  constexpr float kOff = QT == lk::kQ8_0 ? 128.0f : QT == lk::kQ4_0 ? 8.0f : 16.0f;
  const int64_t nb = a.cols / 32;
  const float* dx[T];
  const float* ds[T];
  const int8_t* xq[T];
  for (int t = 0; t < T; t++) {
    const uint8_t* act = a.xq + (t0 + t) * lk::actStride(a.cols);
    dx[t] = lk::actD(act);
    ds[t] = lk::actDs32(act, a.cols);
    xq[t] = lk::actQ(act, a.cols);
  }
  const __m512i low4 = _mm512_set1_epi8(15), five = _mm512_set1_epi8(0x10);
  const uint8_t* p[S];
  __m512 acc[S][T], off[S][T];
  for (int s = 0; s < S; s++) {
    p[s] = packed + groups[s] * nb * PB;
    for (int t = 0; t < T; t++) acc[s][t] = off[s][t] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < nb; b++) {
#pragma GCC unroll 4
    for (int s = 0; s < S; s++) {
      const uint8_t* q = p[s] + b * PB;
      prefetchLines<PB>(q + kPackedAhead);
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)));
      __m512i dot[T][2];
      for (int t = 0; t < T; t++) dot[t][0] = dot[t][1] = _mm512_setzero_si512();
      if constexpr (QT == lk::kQ8_0) {
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
          const __m512i u = _mm512_loadu_si512(q + kValues + 64 * j);
          for (int t = 0; t < T; t++) dpbusdQuad(dot[t][j & 1], u, xq[t] + 32 * b + 4 * j);
        }
      } else {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
          const __m512i v = _mm512_loadu_si512(q + kValues + 64 * j);
          __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
          if constexpr (QT == lk::kQ5_0) {
            lo = _mm512_mask_add_epi8(lo, fifthBits(q + 32 + 8 * j), lo, five);
            hi = _mm512_mask_add_epi8(hi, fifthBits(q + 64 + 8 * j), hi, five);
          }
          for (int t = 0; t < T; t++) {
            dpbusdQuad(dot[t][0], lo, xq[t] + 32 * b + 4 * j);
            dpbusdQuad(dot[t][1], hi, xq[t] + 32 * b + 16 + 4 * j);
          }
        }
      }
      for (int t = 0; t < T; t++) {
        const __m512 sums = _mm512_cvtepi32_ps(_mm512_add_epi32(dot[t][0], dot[t][1]));
        acc[s][t] = _mm512_fmadd_ps(sums, _mm512_mul_ps(dw, _mm512_set1_ps(dx[t][b])), acc[s][t]);
        off[s][t] = _mm512_fmadd_ps(dw, _mm512_set1_ps(ds[t][b]), off[s][t]);
      }
    }
  }
  for (int s = 0; s < S; s++) {
    const int64_t r0 = groups[s] * lk::kPackRows;
    const __m512 bias = a.bias ? _mm512_loadu_ps(a.bias + r0) : _mm512_setzero_ps();
    for (int t = 0; t < T; t++)
      _mm512_storeu_ps(a.out + (t0 + t) * a.rows + r0,
                       _mm512_add_ps(_mm512_fnmadd_ps(_mm512_set1_ps(kOff), off[s][t], acc[s][t]), bias));
  }
}

#ifndef LK_PACKED_STREAMS
#define LK_PACKED_STREAMS 4
#endif

// Row groups [g0, g1): one token in S streams a slice's S-th apart (inStreams; as the row paths
// read four rows at once), a small batch a group at a time against every token in chunks of four
// (a group's blocks, 4.5 to 17 KiB at 4,096 columns, stay in L1 between chunks).
template <int QT>
inline void packedGroups(const QuantMatmulArgs& a, const uint8_t* packed, int64_t g0, int64_t g1) {
  if (a.nTokens == 1)
    return inStreams<LK_PACKED_STREAMS>(g0, g1, [&](auto n, const int64_t* groups) {
      packedGroupsT<QT, 1, decltype(n)::value>(a, packed, groups, 0);
    });
  for (int64_t g = g0; g < g1; g++)
    inTokenChunks<4>(0, a.nTokens, [&](auto t, int64_t t0) { packedGroupsT<QT, decltype(t)::value, 1>(a, packed, &g, t0); });
}

#endif
