// The row path on 256-bit vectors (the AVX2 and AVX-VNNI variants): one Q4_K or IQ4_XS row against
// one token. Included by quant_kernels.cpp inside its variant namespace, in its AVX2 builds without
// AVX-512.
#pragma once

// One Q4_K row against one token with 256-bit vectors (AVX2 and AVX-VNNI), rowsQ4K's arithmetic on
// half the width. A 32-byte load of quants holds block 2k in its low nibbles and 2k + 1 in its high
// ones, so the activations are read as they lie. The two blocks' 8-lane dots are folded into one
// vector (lanes [2k 2k 2k+1 2k+1] in each 128-bit half: an unpack pair and an add, no horizontal
// adds), converted once and multiplied by their scales d·sc·dx, spread from one vector of the
// group's eight by a permute; the mins go to a second accumulator (dmin·m times the activations'
// d·Σq per block). The rows go one after another, one stream a thread: four rows a quarter of the
// slice apart, as the 512-bit path reads them, ran at 34-44% of the streaming read here against
// 64-78% for one row (two rows 39-61%), alternating, both threads, AVX2 and AVX-VNNI alike: on
// sixteen 256-bit registers four rows' state does not fit. Folding all eight dots with horizontal
// adds instead of the pairwise unpacks, or the folded pairs by one more horizontal add (two
// conversions a group instead of four), measured the same.
inline void rowQ4K(const QuantMatmulArgs& a, int64_t row) {
  constexpr int64_t GB = 144;
  const int64_t ng = a.cols / 256;
  const uint8_t* w = a.w + row * ng * GB;
  const int8_t* xq = lk::actQ(a.xq, a.cols);
  const float* xd = lk::actD(a.xq);
  const float* xs = lk::actDs32(a.xq, a.cols);
  const __m256i low4 = _mm256_set1_epi8(15);
  const __m256i spread[4] = {_mm256_setr_epi32(0, 0, 1, 1, 0, 0, 1, 1), _mm256_setr_epi32(2, 2, 3, 3, 2, 2, 3, 3),
                             _mm256_setr_epi32(4, 4, 5, 5, 4, 4, 5, 5), _mm256_setr_epi32(6, 6, 7, 7, 6, 6, 7, 7)};
  const __m128i scShift = _mm_setr_epi32(0, 0, 0, 4);
  const __m128i scLowMask = _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f);
  const __m128i scHighMask = _mm_setr_epi32(0, 0x30303030, 0, 0x30303030);
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, mins = _mm256_setzero_ps();
  for (int64_t gi = 0; gi < ng; gi++) {
    const uint8_t* g = w + gi * GB;
    const int8_t* x = xq + gi * 256;
    // No software prefetch: the hardware's follows one stream, and a prefetch 4 groups ahead cost
    // 15% (282-295 against 243-256 µs a 4096x4096 product, two threads, alternating).
    // [sc 0-3, sc 4-7, m 0-3, m 4-7] from bytes 4-15, as rowsQ4K decodes them.
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 4));
    const __m128i low = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(raw, _MM_SHUFFLE(2, 1, 2, 0)), scShift), scLowMask);
    const __m128i high = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(raw, _MM_SHUFFLE(1, 1, 0, 0)), 2), scHighMask);
    const __m128i scm = _mm_or_si128(low, high);
    uint32_t dd;
    std::memcpy(&dd, g, 4);
    const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128(int(dd)));  // [d, dmin, ...]
    const __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(scm));
    const __m256 m = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(scm, 8)));
    const __m256 v = _mm256_mul_ps(_mm256_mul_ps(sc, _mm256_broadcastss_ps(dm)), _mm256_loadu_ps(xd + gi * 8));
    mins = _mm256_fmadd_ps(_mm256_mul_ps(m, _mm256_broadcastss_ps(_mm_movehdup_ps(dm))), _mm256_loadu_ps(xs + gi * 8), mins);
    for (int k = 0; k < 4; k++) {
      const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 16 + 32 * k));
      const __m256i p0 = dotBytes(_mm256_and_si256(qs, low4), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 64 * k)));
      const __m256i p1 = dotBytes(_mm256_and_si256(_mm256_srli_epi16(qs, 4), low4),
                                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 64 * k + 32)));
      const __m256i p = _mm256_add_epi32(_mm256_unpacklo_epi64(p0, p1), _mm256_unpackhi_epi64(p0, p1));
      acc[k % 2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_permutevar8x32_ps(v, spread[k]), acc[k % 2]);
    }
  }
  a.out[row] = hsum8(_mm256_sub_ps(_mm256_add_ps(acc[0], acc[1]), mins)) + (a.bias ? a.bias[row] : 0.0f);
}

// One IQ4_XS row against one token with 256-bit vectors (AVX2 and AVX-VNNI), one stream as rowQ4K:
// a 32-byte load of quants holds blocks 2k and 2k + 1, its low nibbles their first 16 values and
// its high ones their last 16, against activations in iq4xsOrder. The levels are signed bytes (a
// byte shuffle of the nibbles), multiplied by the sign trick (|w| against x with w's sign), so the
// 16-bit pairwise sums of the AVX2 build cannot saturate; one dot of the low and one of the high
// nibbles leave lanes 0-3 for block 2k and 4-7 for 2k + 1, scaled by d·(ls − 32)·dx.
inline void rowIQ4XS(const QuantMatmulArgs& a, const int8_t* xq, int64_t row) {
  constexpr int64_t GB = 136;
  const int64_t ng = a.cols / 256;
  const uint8_t* w = a.w + row * ng * GB;
  const float* xd = lk::actD(a.xq);
  const __m256i low4 = _mm256_set1_epi8(15);
  const __m128i levels128 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(lk::kIq4nlLevels));
  const __m256i levels = _mm256_set_m128i(levels128, levels128);
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t gi = 0; gi < ng; gi++) {
    const uint8_t* g = w + gi * GB;
    const int8_t* x = xq + gi * 256;
    const __m256 sx = _mm256_mul_ps(iq4xsScaleVec(g), _mm256_loadu_ps(xd + gi * 8));  // d·(ls − 32)·dx per block
    for (int k = 0; k < 4; k++) {
      const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 8 + 32 * k));
      const __m256i lo = _mm256_shuffle_epi8(levels, _mm256_and_si256(qs, low4));
      const __m256i hi = _mm256_shuffle_epi8(levels, _mm256_and_si256(_mm256_srli_epi16(qs, 4), low4));
      // Blocks 2k and 2k + 1: the first 16 values of each at x + 128 (k / 2) + 32 (k % 2), the last 16
      // 64 bytes on.
      const int8_t* xk = x + 128 * (k / 2) + 32 * (k % 2);
      const __m256i xlo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xk));
      const __m256i xhi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xk + 64));
      const __m256i p = _mm256_add_epi32(dotBytes(_mm256_sign_epi8(lo, lo), _mm256_sign_epi8(xlo, lo)),
                                         dotBytes(_mm256_sign_epi8(hi, hi), _mm256_sign_epi8(xhi, hi)));
      const __m256 scale = _mm256_permutevar8x32_ps(sx, _mm256_setr_epi32(2 * k, 2 * k, 2 * k, 2 * k, 2 * k + 1, 2 * k + 1,
                                                                          2 * k + 1, 2 * k + 1));
      acc[k % 2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc[k % 2]);
    }
  }
  a.out[row] = hsum8(_mm256_add_ps(acc[0], acc[1])) + (a.bias ? a.bias[row] : 0.0f);
}
