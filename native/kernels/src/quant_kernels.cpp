// The quantized products, compiled once per variant (see quant_kernels.h and binding.gyp). A row's
// dot product with a token walks the weight blocks; each 32-value block of weights is decoded once
// into 32 unsigned bytes (Q8_0: their magnitudes, the signs moved onto the activations) and dotted
// with every token of the tile as bytes: 8 int32 lanes of 4 products each, converted to float and
// scaled by the block's scales times the activation block's d. A format's offset or min is one
// scalar correction per block from the activation block's sums.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant_kernels.h"

#if defined(__AVX2__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

#ifndef LK_VARIANT
#error "compile with -DLK_VARIANT=<portable|avx2|avx2vnni|avx512|avx512vnni>"
#endif

namespace LK_VARIANT {
namespace {

using lk::ActBlock;
using lk::QuantMatmulArgs;

inline float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  float f;
  if (e == 0) {
    f = float(m) * 5.9604644775390625e-8f;  // subnormal: m * 2^-24
    return sign ? -f : f;
  }
  const uint32_t bits = e == 31 ? (sign | 0x7f800000u | (m << 13)) : (sign | ((e + 112) << 23) | (m << 13));
  std::memcpy(&f, &bits, 4);
  return f;
}

// Q4_K's j-th six-bit scale and min from its 12 packed bytes.
inline void scaleMinK4(int j, const uint8_t* s, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// One 32-value block of a weight row, ready for the dot products: unsigned bytes (or, for Q8_0,
// the signed bytes themselves), the float scale of each half (lo: values 0-15, hi: 16-31), and the
// offset each half subtracts per unit of activation (times the activation sum).
struct Scales {
  float lo, hi, offLo, offHi;
};

// The block's scales; `sub` is the block's index within its super-block (K-quants).
template <int QT>
inline Scales blockScales(const uint8_t* sb, int sub) {
  if constexpr (QT == lk::kQ8_0) {
    const float d = half(sb);
    return {d, d, 0.0f, 0.0f};
  } else if constexpr (QT == lk::kQ4_0) {
    const float d = half(sb);
    return {d, d, 8.0f * d, 8.0f * d};
  } else if constexpr (QT == lk::kQ4_K) {
    int sc, m;
    scaleMinK4(sub, sb + 4, sc, m);
    const float d = half(sb) * float(sc), mn = half(sb + 2) * float(m);
    return {d, d, mn, mn};
  } else {
    const float d = half(sb + 208);
    const int8_t* sc = reinterpret_cast<const int8_t*>(sb + 192) + 2 * sub;
    const float lo = d * float(sc[0]), hi = d * float(sc[1]);
    return {lo, hi, 32.0f * lo, 32.0f * hi};
  }
}

constexpr int64_t blockValues(int QT) { return QT == lk::kQ4_K || QT == lk::kQ6_K ? 256 : 32; }
constexpr int64_t blockBytes(int QT) { return lk::kQuantFormats[QT].bytes; }

// The block's 32 weights as integers (unsigned for all but Q8_0), for the scalar path.
template <int QT>
inline void blockInts(const uint8_t* sb, int sub, int32_t* v) {
  if constexpr (QT == lk::kQ8_0) {
    for (int j = 0; j < 32; j++) v[j] = int8_t(sb[2 + j]);
  } else if constexpr (QT == lk::kQ4_0) {
    for (int j = 0; j < 16; j++) {
      v[j] = sb[2 + j] & 15;
      v[j + 16] = sb[2 + j] >> 4;
    }
  } else if constexpr (QT == lk::kQ4_K) {
    const uint8_t* qs = sb + 16 + (sub / 2) * 32;
    for (int j = 0; j < 32; j++) v[j] = sub % 2 ? qs[j] >> 4 : qs[j] & 15;
  } else {
    const int n = sub / 4, k = sub % 4;
    const uint8_t* ql = sb + n * 64 + (k % 2) * 32;
    const uint8_t* qh = sb + 128 + n * 32;
    for (int j = 0; j < 32; j++) v[j] = (k < 2 ? ql[j] & 15 : ql[j] >> 4) | (((qh[j] >> (2 * k)) & 3) << 4);
  }
}

inline void quantizeBlockScalar(const float* x, ActBlock& b) {
  float amax = 0.0f;
  for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
  int s0 = 0, s1 = 0;
  for (int j = 0; j < 32; j++) {
    const int q = std::max(-127, std::min(127, int(std::nearbyint(x[j] * id))));
    b.q[j] = int8_t(q);
    (j < 16 ? s0 : s1) += q;
  }
  b.d = d;
  b.sum[0] = int16_t(s0);
  b.sum[1] = int16_t(s1);
}

#if defined(__AVX2__)

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

inline void quantizeBlock(const float* x, ActBlock& b) {
  const __m256 signBit = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  for (int i = 0; i < 4; i++) v[i] = _mm256_loadu_ps(x + 8 * i);
  __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(signBit, v[0]), _mm256_andnot_ps(signBit, v[1])),
                           _mm256_max_ps(_mm256_andnot_ps(signBit, v[2]), _mm256_andnot_ps(signBit, v[3])));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float amax = _mm_cvtss_f32(m4);
  const float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
  const __m256 idv = _mm256_set1_ps(id);
  __m256i q[4];
  for (int i = 0; i < 4; i++) q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], idv));  // nearest, ties to even
  b.d = d;
  b.sum[0] = int16_t(hsum8i(_mm256_add_epi32(q[0], q[1])));
  b.sum[1] = int16_t(hsum8i(_mm256_add_epi32(q[2], q[3])));
  // The packs interleave 128-bit lanes; one permute puts the 32 bytes back in order.
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(b.q),
                      _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

// The block's 32 weights as bytes: Q8_0 signed, the others unsigned (0-15, Q6_K 0-63).
template <int QT>
inline __m256i blockBytesVec(const uint8_t* sb, int sub) {
  const __m256i low4 = _mm256_set1_epi8(15);
  if constexpr (QT == lk::kQ8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sb + 2));
  } else if constexpr (QT == lk::kQ4_0) {
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sb + 2));
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(qs, 4), qs);
    return _mm256_and_si256(both, low4);
  } else if constexpr (QT == lk::kQ4_K) {
    const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sb + 16 + (sub / 2) * 32));
    return _mm256_and_si256(sub % 2 ? _mm256_srli_epi16(qs, 4) : qs, low4);
  } else {
    const int n = sub / 4, k = sub % 4;
    const __m256i ql = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sb + n * 64 + (k % 2) * 32));
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sb + 128 + n * 32));
    const __m256i lo = _mm256_and_si256(k < 2 ? ql : _mm256_srli_epi16(ql, 4), low4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), _mm256_set1_epi8(3));
    return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
  }
}

// R rows (rs apart, from r) x T tokens (from t): every block of each row decoded once for the T
// tokens, sums in float vectors, the offset corrections in scalars.
template <int QT, int R, int T>
inline void tile(const QuantMatmulArgs& a, int64_t r, int64_t rs, int64_t t) {
  constexpr int64_t BV = blockValues(QT), BB = blockBytes(QT), NS = BV / 32;
  const int64_t nb = a.cols / BV, nx = a.cols / 32;
  __m256 acc[R][T];
  float corr[R][T];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < T; j++) {
      acc[i][j] = _mm256_setzero_ps();
      corr[i][j] = 0.0f;
    }
  const uint8_t* rowp[R];
  for (int i = 0; i < R; i++) rowp[i] = a.w + (r + i * rs) * nb * BB;
  for (int64_t b = 0; b < nb; b++) {
    for (int i = 0; i < R; i++) {
      const uint8_t* sb = rowp[i] + b * BB;
      __builtin_prefetch(sb + 8 * BB, 0, 0);
      for (int sub = 0; sub < NS; sub++) {
        const Scales s = blockScales<QT>(sb, sub);
        const __m256i wv = blockBytesVec<QT>(sb, sub);
        const __m256i u = QT == lk::kQ8_0 ? _mm256_sign_epi8(wv, wv) : wv;
        const __m256 sv = _mm256_setr_ps(s.lo, s.lo, s.lo, s.lo, s.hi, s.hi, s.hi, s.hi);
        for (int j = 0; j < T; j++) {
          const ActBlock& x = a.xq[(t + j) * nx + b * NS + sub];
          __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q));
          if constexpr (QT == lk::kQ8_0) xv = _mm256_sign_epi8(xv, wv);
          const __m256 dot = _mm256_cvtepi32_ps(dotBytes(u, xv));
          acc[i][j] = _mm256_fmadd_ps(dot, _mm256_mul_ps(sv, _mm256_set1_ps(x.d)), acc[i][j]);
          if constexpr (QT != lk::kQ8_0) corr[i][j] += x.d * (s.offLo * float(x.sum[0]) + s.offHi * float(x.sum[1]));
        }
      }
    }
  }
  for (int i = 0; i < R; i++) {
    const int64_t row = r + i * rs;
    for (int j = 0; j < T; j++)
      a.out[(t + j) * a.rows + row] = hsum8(acc[i][j]) - corr[i][j] + (a.bias ? a.bias[row] : 0.0f);
  }
}

#else  // portable: the same arithmetic in scalar code

inline void quantizeBlock(const float* x, ActBlock& b) { quantizeBlockScalar(x, b); }

template <int QT, int R, int T>
inline void tile(const QuantMatmulArgs& a, int64_t r, int64_t rs, int64_t t) {
  constexpr int64_t BV = blockValues(QT), BB = blockBytes(QT), NS = BV / 32;
  const int64_t nb = a.cols / BV, nx = a.cols / 32;
  for (int i = 0; i < R; i++) {
    const int64_t row = r + i * rs;
    const uint8_t* rowp = a.w + row * nb * BB;
    for (int j = 0; j < T; j++) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; b++)
        for (int sub = 0; sub < NS; sub++) {
          const uint8_t* sb = rowp + b * BB;
          const Scales s = blockScales<QT>(sb, sub);
          int32_t v[32];
          blockInts<QT>(sb, sub, v);
          const ActBlock& x = a.xq[(t + j) * nx + b * NS + sub];
          int32_t lo = 0, hi = 0;
          for (int k = 0; k < 16; k++) lo += v[k] * x.q[k];
          for (int k = 16; k < 32; k++) hi += v[k] * x.q[k];
          acc += x.d * (s.lo * float(lo) + s.hi * float(hi) - s.offLo * float(x.sum[0]) - s.offHi * float(x.sum[1]));
        }
      a.out[(t + j) * a.rows + row] = acc + (a.bias ? a.bias[row] : 0.0f);
    }
  }
}

#endif

void quantizeActs(ActBlock* dst, const float* x, int64_t cols, int64_t t0, int64_t t1) {
  const int64_t nb = cols / 32;
  for (int64_t t = t0; t < t1; t++)
    for (int64_t b = 0; b < nb; b++) quantizeBlock(x + t * cols + b * 32, dst[t * nb + b]);
}

// Rows [r0, r1): one token reads the range as four streams a quarter apart (as the float matvec
// does: more lines in flight than one stream); a batch takes two rows at a time against four
// tokens, so each decoded block serves eight dot products.
template <int QT>
void matmulRange(const QuantMatmulArgs& a, int64_t r0, int64_t r1) {
  if (a.nTokens == 1) {
    const int64_t q = (r1 - r0) / 4;
    for (int64_t i = 0; i < q; i++) tile<QT, 4, 1>(a, r0 + i, q, 0);
    for (int64_t r = r0 + 4 * q; r < r1; r++) tile<QT, 1, 1>(a, r, 1, 0);
    return;
  }
  auto tokens = [&](auto rowsTag, int64_t r) {
    constexpr int R = decltype(rowsTag)::value;
    int64_t t = 0;
    for (; t + 4 <= a.nTokens; t += 4) tile<QT, R, 4>(a, r, 1, t);
    for (; t + 2 <= a.nTokens; t += 2) tile<QT, R, 2>(a, r, 1, t);
    if (t < a.nTokens) tile<QT, R, 1>(a, r, 1, t);
  };
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) tokens(std::integral_constant<int, 2>{}, r);
  if (r < r1) tokens(std::integral_constant<int, 1>{}, r);
}

void matmul(const QuantMatmulArgs& a, int64_t r0, int64_t r1) {
  switch (a.qtype) {
    case lk::kQ8_0:
      return matmulRange<lk::kQ8_0>(a, r0, r1);
    case lk::kQ4_0:
      return matmulRange<lk::kQ4_0>(a, r0, r1);
    case lk::kQ4_K:
      return matmulRange<lk::kQ4_K>(a, r0, r1);
    default:
      return matmulRange<lk::kQ6_K>(a, r0, r1);
  }
}

}  // namespace
}  // namespace LK_VARIANT

namespace lk {

#define LK_QCAT2(a, b) a##b
#define LK_QCAT(a, b) LK_QCAT2(a, b)
#define LK_QSTR2(a) #a
#define LK_QSTR(a) LK_QSTR2(a)

const QuantTable* LK_QCAT(quant_table_, LK_VARIANT)() {
  static const QuantTable table = {LK_QSTR(LK_VARIANT), LK_VARIANT::quantizeActs, LK_VARIANT::matmul};
  return &table;
}

}  // namespace lk
