// A thin vector layer over GCC/Clang vector extensions. The width follows the target flags the
// variant is compiled with: 16 lanes with AVX-512, 8 with AVX2, 4 otherwise (SSE2 on x86-64, or
// whatever the compiler lowers to elsewhere). Kernels written against it are compiled once per
// variant, so the same source becomes zmm, ymm or xmm code.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__SSE2__) && !defined(__AVX2__)
#include <emmintrin.h>
#endif
#if defined(__AVX2__) || defined(__AVX512F__)
// GCC 12's AVX-512 headers self-initialise "undefined" registers, which it then reports as
// uninitialised wherever they are inlined (GCC bug 105593): harmless, so silenced here.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace LK_VARIANT {

#if defined(__AVX512F__)
constexpr int W = 16;
#elif defined(__AVX2__)
constexpr int W = 8;
#else
constexpr int W = 4;
#endif

typedef float vf __attribute__((vector_size(W * 4)));
typedef int32_t vi __attribute__((vector_size(W * 4)));
typedef uint32_t vu __attribute__((vector_size(W * 4)));
typedef uint16_t vh __attribute__((vector_size(W * 2)));

// Every lane x, as one broadcast. Not vf{} + x: adding +0 is not an identity for -0, so the
// compiler must emit the add before the broadcast, an extra dependent op on every splat in the
// inner loops (and GCC assembles a lane-by-lane initialiser from inserts).
inline vf splat(float x) {
#if defined(__AVX512F__)
  return (vf)_mm512_set1_ps(x);
#elif defined(__AVX2__)
  return (vf)_mm256_set1_ps(x);
#elif defined(__SSE2__)
  return (vf)_mm_set1_ps(x);
#else
  return vf{x, x, x, x};
#endif
}
inline vf loadf(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void storef(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
inline vf vmax(vf a, vf b) { return a > b ? a : b; }

// Horizontal sum by halving, in registers.
inline float hsum(vf v) {
#if defined(__AVX512F__)
  const __m512 z = (__m512)v;
  const __m256 s8 = _mm512_castps512_ps256(_mm512_add_ps(z, _mm512_shuffle_f32x4(z, z, 0x4e)));
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
#elif defined(__AVX2__)
  const __m256 s8 = (__m256)v;
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
#else
  return (v[0] + v[2]) + (v[1] + v[3]);
#endif
#if defined(__AVX2__) || defined(__AVX512F__)
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
#endif
}
// Horizontal max by halving, in registers: a chain of W scalar maxima took about 60 cycles, once
// per query head and softmax step.
inline float hmax(vf v) {
#if defined(__AVX512F__)
  return _mm512_reduce_max_ps((__m512)v);
#elif defined(__AVX2__)
  const __m256 s8 = (__m256)v;
  __m128 s4 = _mm_max_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s4 = _mm_max_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_max_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
#else
  return std::max(std::max(v[0], v[1]), std::max(v[2], v[3]));
#endif
}

// Lanes [0, n) of p and `fill` in the others (0 <= n <= W).
inline vf loadfTail(const float* p, int64_t n, float fill) {
#if defined(__AVX512F__)
  return (vf)_mm512_mask_loadu_ps(_mm512_set1_ps(fill), __mmask16((1u << n) - 1), p);
#else
  vi lane;
  for (int i = 0; i < W; i++) lane[i] = i;
  return lane < vi{} + int32_t(n) ? loadf(p) : splat(fill);
#endif
}

// Vector j of a softmax step's n scores (the buffer holds whole vectors past n), lanes at n and
// past reading as -inf (exp -> 0). Padding written as -inf by scalar stores before the vector
// loads stalled each on store forwarding: a decode call over one key of 32 heads took 3.7-4.7
// against 2.4-3.4 µs (BENCHMARKS.md).
inline vf scoresVector(const float* row, int64_t j, int64_t n) {
  return j + W <= n ? loadf(row + j) : loadfTail(row + j, std::max<int64_t>(0, n - j), -INFINITY);
}

// ---- 16-bit float formats -------------------------------------------------------------------

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    u = sign;
  } else {  // subnormal: normalise
    int e = -1;
    do {
      mant <<= 1;
      e++;
    } while ((mant & 0x400) == 0);
    u = sign | uint32_t(112 - e) << 23 | ((mant & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round-to-nearest-even, NaN kept NaN (as PyTorch).
inline uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t(((x >> 16) | 0x40) & 0xffff);
  return uint16_t((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

// Round-to-nearest-even fp32 -> fp16 with subnormals, overflow to infinity.
inline uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const int32_t exp = int32_t((x >> 23) & 0xff);
  uint32_t mant = x & 0x7fffff;
  if (exp == 0xff) return uint16_t(sign | 0x7c00 | (mant ? 0x200 : 0));
  const int32_t e = exp - 127 + 15;
  if (e >= 31) return uint16_t(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return uint16_t(sign);
    mant |= 0x800000;
    const int shift = 14 - e;
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return uint16_t(sign | half);
  }
  uint32_t half = (uint32_t(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;  // may carry into the exponent: correct
  return uint16_t(sign | half);
}

// bf16 is the top half of an fp32: zero-extend each word and shift it up. Intrinsics where
// available (GCC's generic conversion splits the widening into two halves plus an insert).
inline vf load_bf16(const uint16_t* p) {
#if defined(__AVX512F__)
  const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return (vf)_mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
#elif defined(__AVX2__)
  const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return (vf)_mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
#else
  vh h;
  std::memcpy(&h, p, sizeof h);
  vu u = __builtin_convertvector(h, vu) << 16;
  return (vf)u;
#endif
}

// W floats rounded to bf16 as f32_to_bf16 rounds them (to nearest even, NaN kept NaN), each in the
// low half of its 32-bit lane.
inline vu bf16Bits(vf v) {
  vu x;
  std::memcpy(&x, &v, sizeof x);
  const vu rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
  const vu nan = (x >> 16) | 0x40u;
  return (x & 0x7fffffffu) > 0x7f800000u ? nan : rounded;
}

// W floats narrowed to bf16 at p: f32_to_bf16 lane-wise.
inline void store_bf16(uint16_t* p, vf v) {
  const vh h = __builtin_convertvector(bf16Bits(v), vh);
  std::memcpy(p, &h, sizeof h);
}

// W floats narrowed to fp16 at p, round-to-nearest-even (the hardware conversion where there is
// one: subnormals, overflow to infinity and NaN as f32_to_f16 does).
inline void store_f16(uint16_t* p, vf v) {
#if defined(__AVX512F__)
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph((__m512)v, _MM_FROUND_TO_NEAREST_INT));
#elif defined(__F16C__)
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph((__m256)v, _MM_FROUND_TO_NEAREST_INT));
#else
  for (int i = 0; i < W; i++) p[i] = f32_to_f16(v[i]);
#endif
}

inline vf load_f16(const uint16_t* p) {
#if defined(__AVX512F__)
  return (vf)_mm512_maskz_cvtph_ps(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
#elif defined(__F16C__)
  return (vf)_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
#else
  vf v;
  for (int i = 0; i < W; i++) v[i] = f16_to_f32(p[i]);
  return v;
#endif
}

// Element loads by stored dtype (0 f32, 1 f16, 2 bf16), as compile-time choices.
template <int DT>
inline vf loadw(const void* base, int64_t i) {
  if constexpr (DT == 0) return loadf(static_cast<const float*>(base) + i);
  else if constexpr (DT == 1) return load_f16(static_cast<const uint16_t*>(base) + i);
  else return load_bf16(static_cast<const uint16_t*>(base) + i);
}
template <int DT>
inline float loadw1(const void* base, int64_t i) {
  if constexpr (DT == 0) return static_cast<const float*>(base)[i];
  else if constexpr (DT == 1) return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
  else return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
}

// Whether loadPair<DT> returns the even and odd elements of its 2W values (bf16 on the x86 vector
// variants) rather than the first and second W in order.
template <int DT>
constexpr bool pairPermuted() {
  return DT == 2 && W >= 8;
}
// 2W stored elements from i on as two vectors. bf16 widens with one load and two bit operations
// per 2W values (each 32-bit lane holds elements 2i and 2i+1: shifting the lane up by 16 gives
// element 2i, masking off its low half gives element 2i+1), where widening in order takes two
// zero-extending loads and two shifts, which compete with the FMAs for the same ports. Kernels that
// read pairs hold the vectors they combine them with in the same order (toPairOrder).
template <int DT>
inline void loadPair(const void* base, int64_t i, vf& a, vf& b) {
  if constexpr (pairPermuted<DT>()) {
    vu x;
    std::memcpy(&x, static_cast<const uint16_t*>(base) + i, sizeof x);
    a = (vf)(x << 16);
    b = (vf)(x & 0xffff0000u);
  } else {
    a = loadw<DT>(base, i);
    b = loadw<DT>(base, i + W);
  }
}
// n floats (a multiple of 2W) from src to dst in the even/odd order loadPair<DT> returns when
// pairPermuted<DT>(): within each 2W, the even elements then the odd ones. fromPairOrder undoes it,
// scaling as it goes.
inline void toPairOrder(float* dst, const float* src, int64_t n) {
  for (int64_t c = 0; c < n; c += 2 * W)
    for (int i = 0; i < W; i++) {
      dst[c + i] = src[c + 2 * i];
      dst[c + W + i] = src[c + 2 * i + 1];
    }
}
inline void fromPairOrder(float* dst, const float* src, int64_t n, float scale) {
  for (int64_t c = 0; c < n; c += 2 * W)
    for (int i = 0; i < W; i++) {
      dst[c + 2 * i] = src[c + i] * scale;
      dst[c + 2 * i + 1] = src[c + W + i] * scale;
    }
}

// ---- exp --------------------------------------------------------------------------------------

// e^x with a Cephes-style polynomial after range reduction: ~1 ulp over the normal range,
// exactly 0 below -87.3 (so -inf padding contributes nothing) and +inf above 88.37.
inline vf vexp(vf x) {
  const vf hi = splat(88.3762626647949f), lo = splat(-87.3365f);
  const vi tooSmall = x < lo;
  const vi tooBig = x > hi;
  vf xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  vf fx = xc * 1.44269504088896341f + 0.5f;
  vf fn = __builtin_convertvector(__builtin_convertvector(fx, vi), vf);
  fn = fn > fx ? fn - 1.0f : fn;  // floor
  vf r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  vf p = splat(1.9875691500E-4f);
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.0f;
  vi e = (__builtin_convertvector(fn, vi) + 127) << 23;
  vf y = p * (vf)e;
  y = tooSmall ? splat(0.0f) : y;
  return tooBig ? splat(INFINITY) : y;
}

// tanh(x): below |x| = 0.625 an odd polynomial in x (Cephes' tanhf coefficients: relative error
// about 1e-7), above it 1 - 2 / (e^2|x| + 1) with x's sign (no cancellation there, |tanh| > 0.55;
// e^2|x| saturating to +inf gives exactly ±1). For soft-capping and GELU's tanh form, which ran
// std::tanh one element at a time.
inline vf vtanh(vf x) {
  const vf ax = x < 0.0f ? -x : x;
  const vf z = x * x;
  vf p = splat(-5.70498872745e-3f);
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const vf small = p * z * x + x;
  const vf big = 1.0f - 2.0f / (vexp(ax + ax) + 1.0f);
  return ax < 0.625f ? small : (x < 0.0f ? -big : big);
}

// Gemma 2's soft-capping of a row of attention scores, n of them (the buffer holds whole vectors
// past n): x = score * scale becomes cap * tanh(x / cap); -inf (a key out of range) stays -inf.
inline void softcapScores(float* row, int64_t n, float cap, float scale = 1.0f) {
  const float inv = 1.0f / cap;
  for (int64_t j = 0; j < n; j += W) {
    const vf x = loadf(row + j) * scale;
    storef(row + j, x == -INFINITY ? x : cap * vtanh(x * inv));
  }
}

// e^x for x <= 0 (-inf included) in the softmax of decode attention, which runs it for every key
// and query head; a relative error of a few parts per million is far below what follows (bf16 or
// 8-bit probabilities, or f32 sums of many terms). With AVX-512: 2^n · 2^f, n = round(x · log2 e),
// |f| <= 1/2, 2^f by its Taylor polynomial to degree 5 (relative error under 3e-6). Eleven vector
// instructions against vexp's two dozen (its clamps, floor and exponent bits): bf16 grouped-query
// attention on keys in L2 took 9.4 against 10.6 ns a key and KV head. Elsewhere vexp itself.
// Below -87 the result is exactly 0 by the mask, and x is clamped there so that no lane computes
// an underflow: an instruction whose result underflows (a denormal, or 0 flushed from one) costs
// an Intel core a microcode assist of about 150 cycles, and every softmax step with padding keys
// (-inf) had one per query head. When scalef flushed -127's power of two to 0, a decode call over
// one key (the data plane's late pass) took 6.3 µs against 4.4 now on the AMX Xeon (32 heads),
// int8 25 against 7, and 512-token prompt attention 1.2-1.6x longer (BENCHMARKS.md).
inline vf vexpNonPositive(vf xv) {
#if defined(__AVX512F__)
  const __m512 x = (__m512)xv;
  const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
  const __m512 t = _mm512_mul_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(1.44269504f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 p = _mm512_set1_ps(1.33335581e-3f);  // ln2^5 / 5!
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.61812911e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.55041087e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.40226507e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.93147181e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return (vf)_mm512_maskz_scalef_ps(live, p, n);
#else
  return vexp(xv);
#endif
}

}  // namespace LK_VARIANT
