// The row path on weights packed with 16 rows in the lanes (quant_pack.h): the 32-value block
// formats Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and IQ4_NL against up to four tokens at once (included by
// quant_kernels.cpp inside the variant's namespace, where prefetchLines, inStreams and the
// activations' layout are defined). AVX-512 VNNI builds take the 16 rows of a 64-byte vector at
// once; the AVX2 and AVX-VNNI builds take its two 32-byte halves (rows 0-7, 8-15) as eight-row
// groups of their own, from the same layout.
//
// Per block of a group of 16 rows: one f16 vector of the rows' scales; per 64-byte vector of
// quants one vpdpbusd a token (two for the nibble formats: low and high nibbles, IQ4_NL's through
// a byte shuffle of its levels), the token's four matching int8 activations broadcast from memory;
// then one conversion and one FMA per token into 16 row sums. The format's offset or its mins
// (packedOffset) meet the activations' d·Σq per block in a second accumulator, applied once at the end.
#pragma once

#if defined(__AVX2__)
// What a packed block's sum takes off per unit of the activations' d·Σq against its scales
// (out = sum − off · Σ scale · d·Σq): Q8_0's 128 (its unsigned storage), Q4_0's 8, Q5_0's 16,
// IQ4_NL's 128 (its levels lifted to unsigned bytes) where the dot takes unsigned weights
// (`liftedUnsigned`; else IQ4_NL and Q8_0 multiply signed bytes and take nothing off); the min
// formats add their mins instead: −1 against the mins.
constexpr float packedOffset(int qt, bool liftedUnsigned) {
  return qt == lk::kQ4_1 || qt == lk::kQ5_1      ? -1.0f
         : qt == lk::kQ4_0                       ? 8.0f
         : qt == lk::kQ5_0                       ? 16.0f
         : liftedUnsigned                        ? 128.0f
                                                 : 0.0f;
}

// How far ahead of its reads each stream of the packed paths asks for lines (1, 4 and 8 KiB measured
// no better at 4096x4096).
constexpr int64_t kPackedAhead = 2048;

// Streams one token's groups are read in: one a thread reached 72-87% of the streaming read at
// 4096x4096, two 91-101%, four 93-109%.
constexpr int kPackedStreams = 4;

// Tokens t0 .. t0 + T − 1 as the packed paths read them: each one's block scales d, its d·Σq per
// block, and its int8 activations as they lie.
template <int T>
struct PackedActs {
  const float* d[T];
  const float* ds[T];
  const int8_t* q[T];
  PackedActs(const QuantMatmulArgs& a, int64_t t0) {
    for (int t = 0; t < T; t++) {
      const uint8_t* act = a.xq + (t0 + t) * lk::actStride(a.cols);
      d[t] = lk::actD(act);
      ds[t] = lk::actDs32(act, a.cols);
      q[t] = lk::actQ(act, a.cols);
    }
  }
};
#endif

#if defined(LK_ROW_Q4K_512) && defined(__AVX512VNNI__)
#define LK_PACKED_ROWS 1

// acc += the 4-byte dot products of the unsigned bytes u with the four signed bytes at s,
// broadcast to every lane from memory (inline assembly: GCC copies the accumulator around the
// intrinsic, and would load and broadcast the four bytes as an instruction of its own).
inline void dpbusdQuad(__m512i& acc, __m512i u, const int8_t* s) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(u), "m"(*reinterpret_cast<const int32_t*>(s)));
}

// A Q5_0 or Q5_1 block's 64-bit mask of fifth bits (a mask-register load).
inline __mmask64 fifthBits(const uint8_t* p) {
  uint64_t m;
  std::memcpy(&m, p, 8);
  return __mmask64(m);
}

// S row groups (groups[0..S)) of a packed matrix against tokens t0 .. t0 + T − 1, their blocks
// read side by side (S sequential streams).
template <int QT, int T, int S>
inline void packedGroupsT(const QuantMatmulArgs& a, const uint8_t* packed, const int64_t* groups, int64_t t0) {
  constexpr int64_t PB = lk::kPackRows * blockBytes(QT);  // a block of a group
  constexpr lk::PackedBlock L = lk::packedBlock(QT);
  constexpr float kOff = packedOffset(QT, true);
  const int64_t nb = a.cols / 32;
  const PackedActs<T> x(a, t0);
  const __m512i low4 = _mm512_set1_epi8(15), five = _mm512_set1_epi8(0x10);
  [[maybe_unused]] const __m512i levels = liftedIq4nlLevels();
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
      // What takes the activations' d·Σq: the scales (an offset), or the min formats' mins.
      const __m512 mw = L.mins >= 0 ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + L.mins))) : dw;
      __m512i dot[T][2];
      for (int t = 0; t < T; t++) dot[t][0] = dot[t][1] = _mm512_setzero_si512();
      if constexpr (QT == lk::kQ8_0) {
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
          const __m512i u = _mm512_loadu_si512(q + L.values + 64 * j);
          for (int t = 0; t < T; t++) dpbusdQuad(dot[t][j & 1], u, x.q[t] + 32 * b + 4 * j);
        }
      } else {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
          const __m512i v = _mm512_loadu_si512(q + L.values + 64 * j);
          __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
          if constexpr (L.masks >= 0) {
            lo = _mm512_mask_add_epi8(lo, fifthBits(q + L.masks + 8 * j), lo, five);
            hi = _mm512_mask_add_epi8(hi, fifthBits(q + L.masks + 32 + 8 * j), hi, five);
          }
          if constexpr (QT == lk::kIQ4_NL) {
            lo = _mm512_shuffle_epi8(levels, lo);
            hi = _mm512_shuffle_epi8(levels, hi);
          }
          for (int t = 0; t < T; t++) {
            dpbusdQuad(dot[t][0], lo, x.q[t] + 32 * b + 4 * j);
            dpbusdQuad(dot[t][1], hi, x.q[t] + 32 * b + 16 + 4 * j);
          }
        }
      }
      for (int t = 0; t < T; t++) {
        const __m512 sums = _mm512_cvtepi32_ps(_mm512_add_epi32(dot[t][0], dot[t][1]));
        acc[s][t] = _mm512_fmadd_ps(sums, _mm512_mul_ps(dw, _mm512_set1_ps(x.d[t][b])), acc[s][t]);
        off[s][t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(x.ds[t][b]), off[s][t]);
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

// Batches under this many tokens take the packed path, larger ones the panels: at 4096x4096 (2
// threads, AVX-512 EPYC) 32 tokens took 1.32-1.51 ms packed against 1.65-1.74 in panels, 64 about
// the same, 128 and 256 longer (5.0-5.5 against 4.6-4.7 ms); at 2048x2048 packed won from 12
// tokens to 32 (0.35-0.38 against 0.46-0.48 ms at 32).
constexpr int64_t kPackedTo = 33;

// Row groups [g0, g1): one token in kPackedStreams streams, each a share of the slice (inStreams, as
// the row paths read four rows at once); a small batch a group at a time against every token in
// chunks of four (a group's blocks, 4.5 to 17 KiB at 4,096 columns, stay in L1 between chunks).
template <int QT>
inline void packedGroups(const QuantMatmulArgs& a, const uint8_t* packed, int64_t g0, int64_t g1) {
  if (a.nTokens == 1)
    return inStreams<kPackedStreams>(g0, g1, [&](auto n, const int64_t* groups) {
      packedGroupsT<QT, 1, decltype(n)::value>(a, packed, groups, 0);
    });
  for (int64_t g = g0; g < g1; g++)
    inTokenChunks<4>(0, a.nTokens, [&](auto t, int64_t t0) { packedGroupsT<QT, decltype(t)::value, 1>(a, packed, &g, t0); });
}

#elif defined(__AVX2__) && !defined(LK_ROW_Q4K_512)
#define LK_PACKED_ROWS 1

// Without AVX-VNNI, Q8_0 and IQ4_NL go through vpmaddubsw, whose pairwise 16-bit sums of unsigned
// bytes up to 255 (Q8_0's storage, IQ4_NL's lifted levels) times the activations would saturate:
// their weights are taken as signed bytes, their signs moved onto the activations, and no offset
// remains.
#if defined(__AVXVNNI__)
constexpr bool kSignedWide = false;
#else
constexpr bool kSignedWide = true;
#endif

// acc + the 4-byte dot products of the unsigned bytes u (at most 31, or VNNI) with the four signed
// bytes at s in every lane.
inline __m256i dotQuad(__m256i acc, __m256i u, const int8_t* s) {
  int32_t quad;
  std::memcpy(&quad, s, 4);
  const __m256i x = _mm256_set1_epi32(quad);
#if defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(acc, u, x);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1)));
#endif
}

// acc + the 4-byte dot products of the signed bytes q with the four at s (without VNNI: |q| against
// the activations carrying q's sign).
inline __m256i dotQuadSigned(__m256i acc, __m256i q, const int8_t* s) {
  int32_t quad;
  std::memcpy(&quad, s, 4);
  const __m256i x = _mm256_sign_epi8(_mm256_set1_epi32(quad), q);
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(q), x), _mm256_set1_epi16(1)));
}

// 0x10 in byte i where bit i of the 32 bits at p is set (half of a Q5 block's mask of fifth bits).
inline __m256i fifthBytes(const uint8_t* p) {
  int32_t bits;
  std::memcpy(&bits, p, 4);
  const __m256i byteOf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                                          3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
  const __m256i sel = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(bits), byteOf), bit);
  return _mm256_and_si256(_mm256_cmpeq_epi8(sel, bit), _mm256_set1_epi8(0x10));
}

// Batches under this many tokens take the packed path: two tokens a pass leave it behind the panels
// from about 16 (2048x2048, 2 threads, avx2 forced on an AVX-512 EPYC: 16 tokens Q4_0 0.37 against
// 0.44 ms, Q5_0 level at 0.53; 32 tokens Q5_0 1.04 against 0.75).
constexpr int64_t kPackedTo = 16;

// S eight-row halves of packed groups (halves[s] = 2 g + h: group g's rows 8h..8h+7) against tokens
// t0 .. t0 + T − 1, their blocks read side by side.
template <int QT, int T, int S>
inline void packedHalvesT(const QuantMatmulArgs& a, const uint8_t* packed, const int64_t* halves, int64_t t0) {
  constexpr int64_t PB = lk::kPackRows * blockBytes(QT);
  constexpr lk::PackedBlock L = lk::packedBlock(QT);
  constexpr bool kSigned = (QT == lk::kQ8_0 || QT == lk::kIQ4_NL) && kSignedWide;
  constexpr float kOff = packedOffset(QT, !kSigned);
  const int64_t nb = a.cols / 32;
  const PackedActs<T> x(a, t0);
  const __m256i low4 = _mm256_set1_epi8(15);
  // IQ4_NL's levels as signed bytes, or lifted by 128 to unsigned ones for the VNNI dot.
  const __m256i signedLevels = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lk::kIq4nlLevels)));
  [[maybe_unused]] const __m256i levels =
      kSigned ? signedLevels : _mm256_xor_si256(signedLevels, _mm256_set1_epi8(int8_t(0x80)));
  const uint8_t* p[S];
  int h[S];
  __m256 acc[S][T], off[S][T];
  for (int s = 0; s < S; s++) {
    p[s] = packed + (halves[s] / 2) * nb * PB;
    h[s] = int(halves[s] % 2);
    for (int t = 0; t < T; t++) acc[s][t] = off[s][t] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < nb; b++) {
#pragma GCC unroll 4
    for (int s = 0; s < S; s++) {
      const uint8_t* q = p[s] + b * PB;
      if (h[s] == 0) prefetchLines<PB>(q + kPackedAhead);
      const uint8_t* half = q + 32 * h[s];
      const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16 * h[s])));
      const __m256 mw =
          L.mins >= 0 ? _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + L.mins + 16 * h[s]))) : dw;
      __m256i dot[T];
      for (int t = 0; t < T; t++) dot[t] = _mm256_setzero_si256();
      auto dotWith = [&](__m256i w, int t, const int8_t* quad) {
        dot[t] = kSigned ? dotQuadSigned(dot[t], w, quad) : dotQuad(dot[t], w, quad);
      };
      if constexpr (QT == lk::kQ8_0) {
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
          __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(half + L.values + 64 * j));
          if constexpr (kSigned) u = _mm256_xor_si256(u, _mm256_set1_epi8(int8_t(0x80)));  // back to q
          for (int t = 0; t < T; t++) dotWith(u, t, x.q[t] + 32 * b + 4 * j);
        }
      } else {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(half + L.values + 64 * j));
          __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
          if constexpr (L.masks >= 0) {
            lo = _mm256_or_si256(lo, fifthBytes(q + L.masks + 8 * j + 4 * h[s]));
            hi = _mm256_or_si256(hi, fifthBytes(q + L.masks + 32 + 8 * j + 4 * h[s]));
          }
          if constexpr (QT == lk::kIQ4_NL) {
            lo = _mm256_shuffle_epi8(levels, lo);
            hi = _mm256_shuffle_epi8(levels, hi);
          }
          for (int t = 0; t < T; t++) {
            dotWith(lo, t, x.q[t] + 32 * b + 4 * j);
            dotWith(hi, t, x.q[t] + 32 * b + 16 + 4 * j);
          }
        }
      }
      for (int t = 0; t < T; t++) {
        acc[s][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[t]), _mm256_mul_ps(dw, _mm256_set1_ps(x.d[t][b])), acc[s][t]);
        if constexpr (kOff != 0.0f) off[s][t] = _mm256_fmadd_ps(mw, _mm256_set1_ps(x.ds[t][b]), off[s][t]);
      }
    }
  }
  for (int s = 0; s < S; s++) {
    const int64_t r0 = halves[s] * 8;
    const __m256 bias = a.bias ? _mm256_loadu_ps(a.bias + r0) : _mm256_setzero_ps();
    for (int t = 0; t < T; t++)
      _mm256_storeu_ps(a.out + (t0 + t) * a.rows + r0,
                       _mm256_add_ps(_mm256_fnmadd_ps(_mm256_set1_ps(kOff), off[s][t], acc[s][t]), bias));
  }
}

// Row groups [g0, g1) as eight-row halves: one token in kPackedStreams streams, a small batch a
// half at a time against every token in chunks of two (the registers hold two tokens' sums).
template <int QT>
inline void packedGroups(const QuantMatmulArgs& a, const uint8_t* packed, int64_t g0, int64_t g1) {
  if (a.nTokens == 1)
    return inStreams<kPackedStreams>(2 * g0, 2 * g1, [&](auto n, const int64_t* halves) {
      packedHalvesT<QT, 1, decltype(n)::value>(a, packed, halves, 0);
    });
  for (int64_t hg = 2 * g0; hg < 2 * g1; hg++)
    inTokenChunks<2>(0, a.nTokens, [&](auto t, int64_t t0) { packedHalvesT<QT, decltype(t)::value, 1>(a, packed, &hg, t0); });
}

#endif
