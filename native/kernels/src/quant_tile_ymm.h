// The quantized products on 256-bit vectors (every variant with AVX2): a block's values as bytes, a
// group's scales as vectors, and the register tile of R rows x T tokens that multiplies them with
// the tokens' int8 activations. Included by quant_kernels.cpp inside its variant namespace, in
// its AVX2 builds.
#pragma once

inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum8i(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// Lane i: the sum of u[4i + k] * s[4i + k], u unsigned and s signed bytes. Without VNNI the
// pairwise 16-bit sums cannot saturate here: u <= 128 (|Q8_0|) against |s| <= 127.
inline __m256i dotBytes(__m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

// Blocks [b0, b1) of a token row, eight lanes at a time per block.
inline void quantizeBlocks(const float* x, int64_t cols, uint8_t* row, int64_t b0, int64_t b1) {
  float* d = const_cast<float*>(lk::actD(row));
  float* ds16 = const_cast<float*>(lk::actDs16(row, cols));
  float* ds32 = const_cast<float*>(lk::actDs32(row, cols));
  int8_t* q = const_cast<int8_t*>(lk::actQ(row, cols));
  const __m256 signBit = _mm256_set1_ps(-0.0f);
  for (int64_t b = b0; b < b1; b++) {
    const float* xb = x + b * 32;
    __m256 v[4];
    for (int i = 0; i < 4; i++) v[i] = _mm256_loadu_ps(xb + 8 * i);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(signBit, v[0]), _mm256_andnot_ps(signBit, v[1])),
                             _mm256_max_ps(_mm256_andnot_ps(signBit, v[2]), _mm256_andnot_ps(signBit, v[3])));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float db = _mm_cvtss_f32(m4) / 127.0f, id = db > 0.0f ? 1.0f / db : 0.0f;
    const __m256 idv = _mm256_set1_ps(id);
    __m256i qi[4];
    for (int i = 0; i < 4; i++) qi[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], idv));  // nearest, ties to even
    d[b] = db;
    const int s0 = hsum8i(_mm256_add_epi32(qi[0], qi[1])), s1 = hsum8i(_mm256_add_epi32(qi[2], qi[3]));
    ds16[lk::ds16Index(b, 0)] = db * float(s0);
    ds16[lk::ds16Index(b, 1)] = db * float(s1);
    ds32[b] = db * float(s0 + s1);
    // The packs interleave 128-bit lanes; one permute puts the 32 bytes back in order.
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * 32),
                        _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  }
}

// Block b of a group as bytes: Q8_0 signed, the others unsigned (0-15, Q6_K 0-63).
template <int QT>
inline __m256i blockVec(const uint8_t* g, int b) {
  const __m256i low4 = _mm256_set1_epi8(15);
  if constexpr (QT == lk::kQ8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + b * 34 + 2));
  } else if constexpr (QT == lk::kIQ4_NL || QT == lk::kIQ4_XS || QT == lk::kMXFP4) {
    // The nibbles as Q4_0's, each replaced by its level (a byte shuffle of the 16 levels); IQ4_XS's
    // eight blocks of 16 nibble bytes follow its 8 bytes of scales.
    const uint8_t* at = QT == lk::kIQ4_XS ? g + 8 + b * 16 : g + b * blockBytes(QT) + nibblesAt(QT);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
    const __m256i idx = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), low4);
    const __m128i levels = _mm_loadu_si128(
        reinterpret_cast<const __m128i*>(QT == lk::kMXFP4 ? lk::kMxfp4Levels : lk::kIq4nlLevels));
    return _mm256_shuffle_epi8(_mm256_set_m128i(levels, levels), idx);
  } else if constexpr (nibbleBlock(QT)) {
    const uint8_t* blk = g + b * blockBytes(QT);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + nibblesAt(QT)));
    const __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), low4);
    if constexpr (!hasFifthBit(QT)) return v;
    uint32_t qh;
    std::memcpy(&qh, blk + fifthBitsAt(QT), 4);
    // Byte j takes bit j of qh: each byte of qh spread over 8 bytes, tested against its bit.
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(int(qh)), _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2,
                                                     2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ULL));
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    return _mm256_or_si256(v, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
  } else if constexpr (QT == lk::kQ4_K || QT == lk::kQ5_K) {
    const __m256i qs =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + (QT == lk::kQ5_K ? 48 : 16) + (b / 2) * 32));
    const __m256i v = _mm256_and_si256(b % 2 ? _mm256_srli_epi16(qs, 4) : qs, low4);
    if constexpr (QT == lk::kQ4_K) return v;
    // Bit b of qh[l] is element l's fifth bit.
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 16));
    const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(b)), _mm256_set1_epi8(1));
    return _mm256_or_si256(v, _mm256_slli_epi16(hi, 4));
  } else if constexpr (QT == lk::kQ2_K) {
    const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 16 + (b / 4) * 32));
    return _mm256_and_si256(_mm256_srl_epi16(qs, _mm_cvtsi32_si128(2 * (b % 4))), _mm256_set1_epi8(3));
  } else if constexpr (QT == lk::kQ3_K) {
    // Two bits of qs at 2·(b % 4), the third from bit b of hmask: q + 4 in 0..7.
    const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 32 + (b / 4) * 32));
    const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g));
    const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(qs, _mm_cvtsi32_si128(2 * (b % 4))), _mm256_set1_epi8(3));
    const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(b)), _mm256_set1_epi8(1));
    return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 2));
  } else {
    const int n = b / 4, k = b % 4;
    const __m256i ql = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + n * 64 + (k % 2) * 32));
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 128 + n * 32));
    const __m256i lo = _mm256_and_si256(k < 2 ? ql : _mm256_srli_epi16(ql, 4), low4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), _mm256_set1_epi8(3));
    return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
  }
}

// Q3_K's 16 scales of a group as signed bytes (sc − 32), in order: the low four bits of scales 0-7
// from the low nibbles of bytes 96-103, of 8-15 from their high nibbles; the top two bits of scale i
// at bits 2·(i / 4) of byte 104 + i % 4.
inline __m128i q3kScaleBytes(const uint8_t* g) {
  const __m128i b8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(g + 96));
  const __m128i low4 = _mm_set1_epi8(15);
  const __m128i lo = _mm_unpacklo_epi64(_mm_and_si128(b8, low4), _mm_and_si128(_mm_srli_epi16(b8, 4), low4));
  uint32_t t;
  std::memcpy(&t, g + 104, 4);
  const __m128i top = _mm_and_si128(_mm_setr_epi32(int(t), int(t >> 2), int(t >> 4), int(t >> 6)), _mm_set1_epi8(3));
  return _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(top, 4)), _mm_set1_epi8(32));
}

// IQ4_XS's eight block scales d·(ls − 32) of a group, from their 6 packed bytes by two variable
// shifts: block b's low four bits are bits 4b of the u32 at byte 4, its top two bits 2b of the u16 at
// byte 2 (lk::iq4xsScale, eight at once).
inline __m256 iq4xsScaleVec(const uint8_t* g) {
  uint32_t sl;
  std::memcpy(&sl, g + 4, 4);
  const int sh = g[2] | (g[3] << 8);
  const __m256i low = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(sl)), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                       _mm256_set1_epi32(15));
  const __m256i high = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(sh), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
                                        _mm256_set1_epi32(3));
  const __m256i ls = _mm256_or_si256(low, _mm256_slli_epi32(high, 4));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(ls, _mm256_set1_epi32(32))), _mm256_set1_ps(half(g)));
}

// Weight side of a group, as the reduction lays out the half sums: a = [lo 0-3 | hi 0-3] and
// b = [lo 4-7 | hi 4-7].
struct GroupVecs {
  __m256 wa, wb, oa, ob;
};

// Eight unsigned bytes (four of them, repeated) as floats.
inline __m256 u8x4Twice(uint32_t four) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set1_epi32(int(four)))); }

template <int QT>
inline GroupVecs groupVecs(const uint8_t* g) {
  GroupVecs v;
  if constexpr (QT == lk::kQ8_0 || QT == lk::kQ4_0) {
    // The eight blocks' f16 scales, gathered, widened, and laid out as the half sums are.
    uint16_t h[8];
    for (int b = 0; b < 8; b++) std::memcpy(&h[b], g + b * blockBytes(QT), 2);
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)));
    v.wa = _mm256_permutevar8x32_ps(d, _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3));
    v.wb = _mm256_permutevar8x32_ps(d, _mm256_setr_epi32(4, 5, 6, 7, 4, 5, 6, 7));
    const __m256 eight = _mm256_set1_ps(QT == lk::kQ4_0 ? 8.0f : 0.0f);
    v.oa = _mm256_mul_ps(v.wa, eight);
    v.ob = _mm256_mul_ps(v.wb, eight);
  } else if constexpr (!lk::isSuperBlock(QT)) {
    alignas(32) float d[8], off[8];
    for (int b = 0; b < 8; b++) blockScale(QT, g + b * blockBytes(QT), d[b], off[b]);
    const __m256i lo = _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3), hi = _mm256_setr_epi32(4, 5, 6, 7, 4, 5, 6, 7);
    const __m256 dv = _mm256_load_ps(d), ov = _mm256_load_ps(off);
    v.wa = _mm256_permutevar8x32_ps(dv, lo);
    v.wb = _mm256_permutevar8x32_ps(dv, hi);
    v.oa = _mm256_permutevar8x32_ps(ov, lo);
    v.ob = _mm256_permutevar8x32_ps(ov, hi);
  } else if constexpr (QT == lk::kQ4_K || QT == lk::kQ5_K) {
    // Scales and mins of blocks 0-3 are the low six bits of bytes 0-3 and 4-7; those of blocks 4-7
    // take their low four bits from bytes 8-11 and their top two from the top of bytes 0-3 / 4-7.
    uint32_t w[3];
    std::memcpy(w, g + 4, 12);
    const uint32_t scLo = w[0] & 0x3f3f3f3fu, mLo = w[1] & 0x3f3f3f3fu;
    const uint32_t scHi = (w[2] & 0x0f0f0f0fu) | ((w[0] >> 2) & 0x30303030u);
    const uint32_t mHi = ((w[2] >> 4) & 0x0f0f0f0fu) | ((w[1] >> 2) & 0x30303030u);
    const __m256 d = _mm256_set1_ps(half(g)), dmin = _mm256_set1_ps(half(g + 2));
    v.wa = _mm256_mul_ps(d, u8x4Twice(scLo));
    v.wb = _mm256_mul_ps(d, u8x4Twice(scHi));
    v.oa = _mm256_mul_ps(dmin, u8x4Twice(mLo));
    v.ob = _mm256_mul_ps(dmin, u8x4Twice(mHi));
  } else if constexpr (QT == lk::kIQ4_XS) {
    // One scale a 32-value block, both halves; no offset.
    const __m256 dv = iq4xsScaleVec(g);
    v.wa = _mm256_permutevar8x32_ps(dv, _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3));
    v.wb = _mm256_permutevar8x32_ps(dv, _mm256_setr_epi32(4, 5, 6, 7, 4, 5, 6, 7));
    v.oa = v.ob = _mm256_setzero_ps();
  } else if constexpr (QT == lk::kQ2_K) {
    // Scales in the low nibbles of bytes 0-15, mins in the high; reordered as Q6_K's below.
    const __m128i raw = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)),
                                         _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15));
    const __m128i sc = _mm_and_si128(raw, _mm_set1_epi8(15));
    const __m128i mn = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15));
    const __m256 d = _mm256_set1_ps(half(g + 80)), dmin = _mm256_set1_ps(half(g + 82));
    v.wa = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sc)));
    v.wb = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sc, 8))));
    v.oa = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(mn)));
    v.ob = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(mn, 8))));
  } else if constexpr (QT == lk::kQ3_K) {
    // The 16 scales laid out as Q6_K's below.
    const __m128i sc = _mm_shuffle_epi8(q3kScaleBytes(g), _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15));
    const __m256 d = _mm256_set1_ps(half(g + 108));
    v.wa = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)));
    v.wb = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))));
    v.oa = _mm256_mul_ps(v.wa, _mm256_set1_ps(4.0f));
    v.ob = _mm256_mul_ps(v.wb, _mm256_set1_ps(4.0f));
  } else {
    // Block b's halves have scales 2b and 2b + 1: reorder the 16 to [0 2 4 6 1 3 5 7 | 8 ...].
    const __m128i sc = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 192)),
                                        _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15));
    const __m256 d = _mm256_set1_ps(half(g + 208));
    v.wa = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)));
    v.wb = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))));
    v.oa = _mm256_mul_ps(v.wa, _mm256_set1_ps(32.0f));
    v.ob = _mm256_mul_ps(v.wb, _mm256_set1_ps(32.0f));
  }
  return v;
}

// R rows (rs apart, from r) x T tokens (from t). Whole 256-value groups are decoded once per row
// for the T tokens; a Q8_0/Q4_0 row's last blocks that make no whole group go one at a time.
template <int QT, int R, int T>
inline void tile(const QuantMatmulArgs& a, int64_t r, int64_t rs, int64_t t) {
  constexpr int64_t GB = groupBytes(QT), BB = blockBytes(QT);
  const int64_t nb = a.cols / 32, ng = a.cols / 256;
  const int64_t rowBytes = a.cols / (lk::isSuperBlock(QT) ? 256 : 32) * BB;
  const int64_t xs = lk::actStride(a.cols);
  __m256 acc[R][T], corr[R][T];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < T; j++) acc[i][j] = corr[i][j] = _mm256_setzero_ps();
  const uint8_t* xrow[T];
  for (int j = 0; j < T; j++) xrow[j] = a.xq + (t + j) * xs;
  for (int64_t gi = 0; gi < ng; gi++) {
    for (int i = 0; i < R; i++) {
      const uint8_t* g = a.w + (r + i * rs) * rowBytes + gi * GB;
      prefetchLines<GB>(g + kStreamAhead);
      const GroupVecs gv = groupVecs<QT>(g);
      __m256i wq[8];
      for (int b = 0; b < 8; b++) wq[b] = blockVec<QT>(g, b);
      for (int j = 0; j < T; j++) {
        const int8_t* xq = lk::actQ(xrow[j], a.cols) + gi * 256;
        __m256i p[8];
        for (int b = 0; b < 8; b++) {
          __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * 32));
          if constexpr (lk::signedQuant(QT)) {
            p[b] = dotBytes(_mm256_sign_epi8(wq[b], wq[b]), _mm256_sign_epi8(xv, wq[b]));
          } else {
            p[b] = dotBytes(wq[b], xv);
          }
        }
        const __m256i ha = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
        const __m256i hb = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
        const float* dx = lk::actD(xrow[j]) + gi * 8;
        const __m256 dxa = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(dx));
        const __m256 dxb = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(dx + 4));
        acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ha), _mm256_mul_ps(gv.wa, dxa), acc[i][j]);
        acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hb), _mm256_mul_ps(gv.wb, dxb), acc[i][j]);
        if constexpr (hasOffset(QT)) {
          const float* s16 = lk::actDs16(xrow[j], a.cols) + gi * 16;
          corr[i][j] = _mm256_fmadd_ps(gv.oa, _mm256_loadu_ps(s16), corr[i][j]);
          corr[i][j] = _mm256_fmadd_ps(gv.ob, _mm256_loadu_ps(s16 + 8), corr[i][j]);
        }
      }
    }
  }
  for (int i = 0; i < R; i++) {
    const int64_t row = r + i * rs;
    const uint8_t* rowp = a.w + row * rowBytes;
    for (int j = 0; j < T; j++) {
      float s = hsum8(acc[i][j]) - hsum8(corr[i][j]);
      for (int64_t b = ng * 8; b < nb; b++) {  // 32-value blocks past the last whole group
        const uint8_t* blk = rowp + b * BB;
        const __m256i wv = blockVec<QT>(blk, 0);
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lk::actQ(xrow[j], a.cols) + b * 32));
        const __m256i p = lk::signedQuant(QT) ? dotBytes(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv)) : dotBytes(wv, xv);
        float dw, off;
        blockScale(QT, blk, dw, off);
        const float dx = lk::actD(xrow[j])[b];
        const float* s16 = lk::actDs16(xrow[j], a.cols);
        s += dw * dx * float(hsum8i(p));
        s -= off * (s16[lk::ds16Index(b, 0)] + s16[lk::ds16Index(b, 1)]);
      }
      a.out[(t + j) * a.rows + row] = s + (a.bias ? a.bias[row] : 0.0f);
    }
  }
}

// A token's int8 activations in the IQ4_XS row paths' order: per 128 values (blocks 4h..4h+3), the
// four blocks' first 16 values, then their last 16 (the low and the high nibbles of their quants).
inline void iq4xsOrder(const int8_t* xq, int64_t cols, int8_t* out) {
  for (int64_t q = 0; q < cols; q += 128)
    for (int k = 0; k < 4; k++) {
      std::memcpy(out + q + 16 * k, xq + q + 32 * k, 16);
      std::memcpy(out + q + 64 + 16 * k, xq + q + 32 * k + 16, 16);
    }
}
