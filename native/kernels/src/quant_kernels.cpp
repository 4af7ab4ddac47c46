// The quantized products, compiled once per variant (see quant_kernels.h and binding.gyp).
//
// A row's product with a token walks the weights in groups of 256 values (one K-quant super-block,
// or eight Q8_0/Q4_0 blocks): each 32-value block is decoded to 32 bytes (Q8_0: its magnitudes,
// the signs moved onto the activations) and dotted with the token's int8 activations, 8 int32
// lanes of 4 products each. One tree of horizontal adds turns the group's 8 dot vectors into its 16
// half-block sums, so the scales are applied as two float vectors per group: the weight side (the
// block's scales, decoded once per row and group for all tokens of the tile) times the
// activations' scales. A format's offset or min is two more FMAs against the activations'
// precomputed d·Σq of each half. Batches of tokens go to the panels of quant_panel.h instead, and
// one token on Q4_K to rowsQ4K (AVX-512) or rowQ4K (AVX2, AVX-VNNI).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "quant_kernels.h"
#include "quant_pack.h"

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

using lk::QuantMatmulArgs;

// How far ahead of the row paths' loads their rows are prefetched: each of the (up to four)
// sequential streams a thread reads asks for its lines this many bytes before it reaches them
// (eight Q4_K groups; 576 and 2304 measured no better, 3072x1024 and 4096x4096, Q4_K and Q6_K).
constexpr int64_t kStreamAhead = 1152;

// Asks for every cache line of [from, from + Bytes), a fixed number of prefetches (a loop over the
// lines that start in the range takes two or three turns by the group's alignment, and its
// mispredicted exits cost as much as the prefetches bought). Called once for every group of a
// sequential stream with from = the group's first byte plus a fixed distance, it covers the stream:
// one prefetch at the distance covered a group's first line only (a Q4_K group spans two or three),
// and the misses of the rest, left to the hardware prefetcher, did not overlap the arithmetic
// (3072x1024 Q4_K, 2 threads: 26-30 GB/s against 33-35).
template <int64_t Bytes>
inline void prefetchLines(const uint8_t* from) {
  for (int64_t o = 0; o < Bytes; o += 64) __builtin_prefetch(from + o, 0, 3);
  if constexpr (Bytes % 64 != 1) __builtin_prefetch(from + Bytes - 1, 0, 3);
}

inline float halfBits(uint16_t h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
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
#endif
}

inline float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return halfBits(h);
}

// Q4_K's eight six-bit scales and mins from its 12 packed bytes.
inline void scalesMinsK4(const uint8_t* s, uint8_t* sc, uint8_t* m) {
  for (int j = 0; j < 4; j++) {
    sc[j] = s[j] & 63;
    m[j] = s[j + 4] & 63;
    sc[j + 4] = (s[j + 8] & 15) | ((s[j] >> 6) << 4);
    m[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
  }
}

constexpr int64_t groupBytes(int QT) { return lk::isSuperBlock(QT) ? lk::kQuantFormats[QT].bytes : 8 * lk::kQuantFormats[QT].bytes; }
constexpr int64_t blockBytes(int QT) { return lk::kQuantFormats[QT].bytes; }
constexpr bool hasOffset(int QT) { return !lk::signedQuant(QT); }

// A 32-value block's scale d and what it subtracts per unit of the activations' d·Σq: Q4_0 8d and
// Q5_0 16d (their values are d·(q − 8), d·(q − 16)), Q4_1 and Q5_1 −m (d·q + m), Q8_0 nothing.
inline void blockScale(int QT, const uint8_t* blk, float& d, float& off) {
  d = QT == lk::kMXFP4 ? lk::e8m0Half(blk[0]) : half(blk);
  off = QT == lk::kQ4_0   ? 8.0f * d
        : QT == lk::kQ5_0 ? 16.0f * d
        : (QT == lk::kQ4_1 || QT == lk::kQ5_1) ? -half(blk + 2)
                                               : 0.0f;
}

// The 32-value formats stored as nibbles, with a fifth bit each in the Q5 formats.
constexpr bool nibbleBlock(int QT) { return QT == lk::kQ4_0 || QT == lk::kQ4_1 || QT == lk::kQ5_0 || QT == lk::kQ5_1; }
using lk::fifthBitsAt;
using lk::nibblesAt;
constexpr bool hasFifthBit(int QT) { return QT == lk::kQ5_0 || QT == lk::kQ5_1 || QT == lk::kQ5_K; }

// Scales of one 256-value group of a row, per half-block: lo[b] for values 0-15 of block b and
// hi[b] for 16-31; off*: what each half subtracts per unit of d·Σq (the offset or min).
struct GroupScales {
  float lo[8], hi[8], offLo[8], offHi[8];
};

inline void groupScales(int QT, const uint8_t* g, GroupScales& s) {
  if (!lk::isSuperBlock(QT)) {
    for (int b = 0; b < 8; b++) {
      float d, off;
      blockScale(QT, g + b * blockBytes(QT), d, off);
      s.lo[b] = s.hi[b] = d;
      s.offLo[b] = s.offHi[b] = off;
    }
  } else if (QT == lk::kQ4_K || QT == lk::kQ5_K) {
    uint8_t sc[8], m[8];
    scalesMinsK4(g + 4, sc, m);
    const float d = half(g), dmin = half(g + 2);
    for (int b = 0; b < 8; b++) {
      s.lo[b] = s.hi[b] = d * float(sc[b]);
      s.offLo[b] = s.offHi[b] = dmin * float(m[b]);
    }
  } else if (QT == lk::kIQ4_XS) {
    const float d = half(g);
    for (int b = 0; b < 8; b++) {
      s.lo[b] = s.hi[b] = d * float(lk::iq4xsScale(g, b) - 32);
      s.offLo[b] = s.offHi[b] = 0.0f;
    }
  } else if (QT == lk::kQ2_K) {
    const float d = half(g + 80), dmin = half(g + 82);
    for (int b = 0; b < 8; b++) {
      s.lo[b] = d * float(g[2 * b] & 15);
      s.hi[b] = d * float(g[2 * b + 1] & 15);
      s.offLo[b] = dmin * float(g[2 * b] >> 4);
      s.offHi[b] = dmin * float(g[2 * b + 1] >> 4);
    }
  } else if (QT == lk::kQ3_K) {
    const float d = half(g + 108);
    int sc[16];
    lk::q3kScales(g + 96, sc);
    for (int b = 0; b < 8; b++) {
      s.lo[b] = d * float(sc[2 * b] - 32);
      s.hi[b] = d * float(sc[2 * b + 1] - 32);
      s.offLo[b] = 4.0f * s.lo[b];
      s.offHi[b] = 4.0f * s.hi[b];
    }
  } else {
    const float d = half(g + 208);
    const int8_t* sc = reinterpret_cast<const int8_t*>(g + 192);
    for (int b = 0; b < 8; b++) {
      s.lo[b] = d * float(sc[2 * b]);
      s.hi[b] = d * float(sc[2 * b + 1]);
      s.offLo[b] = 32.0f * s.lo[b];
      s.offHi[b] = 32.0f * s.hi[b];
    }
  }
}

// Block b of a group as 32 integers (unsigned for all but Q8_0), for the scalar path.
template <int QT>
inline void blockInts(const uint8_t* g, int b, int32_t* v) {
  if constexpr (QT == lk::kQ8_0) {
    for (int j = 0; j < 32; j++) v[j] = int8_t(g[b * 34 + 2 + j]);
  } else if constexpr (QT == lk::kIQ4_NL || QT == lk::kIQ4_XS || QT == lk::kMXFP4) {
    const uint8_t* qs = QT == lk::kIQ4_XS ? g + 8 + b * 16 : g + b * blockBytes(QT) + nibblesAt(QT);
    const int8_t* levels = QT == lk::kMXFP4 ? lk::kMxfp4Levels : lk::kIq4nlLevels;
    for (int j = 0; j < 16; j++) {
      v[j] = levels[qs[j] & 15];
      v[j + 16] = levels[qs[j] >> 4];
    }
  } else if constexpr (nibbleBlock(QT)) {
    const uint8_t* blk = g + b * blockBytes(QT);
    const uint8_t* qs = blk + nibblesAt(QT);
    uint32_t qh = 0;
    if (hasFifthBit(QT)) std::memcpy(&qh, blk + fifthBitsAt(QT), 4);
    for (int j = 0; j < 16; j++) {
      v[j] = (qs[j] & 15) | int((qh >> j) & 1) << 4;
      v[j + 16] = (qs[j] >> 4) | int((qh >> (j + 16)) & 1) << 4;
    }
  } else if constexpr (QT == lk::kQ4_K || QT == lk::kQ5_K) {
    const uint8_t* qs = g + (QT == lk::kQ5_K ? 48 : 16) + (b / 2) * 32;
    for (int j = 0; j < 32; j++)
      v[j] = (b % 2 ? qs[j] >> 4 : qs[j] & 15) | (QT == lk::kQ5_K ? ((g[16 + j] >> b) & 1) << 4 : 0);
  } else if constexpr (QT == lk::kQ2_K) {
    const uint8_t* qs = g + 16 + (b / 4) * 32;
    for (int j = 0; j < 32; j++) v[j] = (qs[j] >> (2 * (b % 4))) & 3;
  } else if constexpr (QT == lk::kQ3_K) {
    const uint8_t* qs = g + 32 + (b / 4) * 32;
    for (int j = 0; j < 32; j++) v[j] = ((qs[j] >> (2 * (b % 4))) & 3) | (((g[j] >> b) & 1) << 2);
  } else {
    const int n = b / 4, k = b % 4;
    const uint8_t* ql = g + n * 64 + (k % 2) * 32;
    const uint8_t* qh = g + 128 + n * 32;
    for (int j = 0; j < 32; j++) v[j] = (k < 2 ? ql[j] & 15 : ql[j] >> 4) | (((qh[j] >> (2 * k)) & 3) << 4);
  }
}

// Blocks [b0, b1) of a token row, scalar: the values, d and the half sums written in layout order.
inline void quantizeBlocksScalar(const float* x, int64_t cols, uint8_t* row, int64_t b0, int64_t b1) {
  float* d = const_cast<float*>(lk::actD(row));
  float* ds16 = const_cast<float*>(lk::actDs16(row, cols));
  float* ds32 = const_cast<float*>(lk::actDs32(row, cols));
  int8_t* q = const_cast<int8_t*>(lk::actQ(row, cols));
  for (int64_t b = b0; b < b1; b++) {
    const float* xb = x + b * 32;
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(xb[j]));
    const float db = amax / 127.0f, id = db > 0.0f ? 1.0f / db : 0.0f;
    int s[2] = {0, 0};
    for (int j = 0; j < 32; j++) {
      const int v = std::max(-127, std::min(127, int(std::nearbyint(xb[j] * id))));
      q[b * 32 + j] = int8_t(v);
      s[j / 16] += v;
    }
    d[b] = db;
    ds16[lk::ds16Index(b, 0)] = db * float(s[0]);
    ds16[lk::ds16Index(b, 1)] = db * float(s[1]);
    ds32[b] = db * float(s[0] + s[1]);
  }
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

#include "quant_panel.h"

#if defined(__AVX512F__) && defined(__AVX512BW__)
#define LK_ROW_Q4K_512 1

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

// A token's int8 activations in rowsBlock32's order: per pair of 32-value blocks, the first 16
// values of both, then their last 16 (the low and the high nibbles of their quants); a lone last
// block stays as it lies.
inline void block32Order(const int8_t* xq, int64_t cols, int8_t* out) {
  int64_t b = 0;
  for (; b + 64 <= cols; b += 64)
    for (int k = 0; k < 2; k++) {
      std::memcpy(out + b + 16 * k, xq + b + 32 * k, 16);
      std::memcpy(out + b + 32 + 16 * k, xq + b + 32 * k + 16, 16);
    }
  std::memcpy(out + b, xq + b, size_t(cols - b));
}

// The permute indices and lane masks of BlockWords, built at compile time (rowsBlock32 runs once per
// four rows, too often to build them there).
template <int64_t BB, int AT, int L>
struct BlockWordTable {
  static constexpr int kWindows = int(((L - 1) * BB / 2 + AT) / 64 + 1);
  struct Table {
    alignas(64) int16_t word[kWindows][32];
    uint32_t keep[kWindows];
  };
  static constexpr Table make() {
    Table t{};
    for (int i = 0; i < L; i++) {
      const int64_t w = i * BB / 2 + AT, k = w / 64;
      t.word[k][i] = int16_t(w % 64);
      t.keep[k] |= 1u << i;
    }
    return t;
  }
  static constexpr Table kTable = make();
};

// Words of up to L blocks BB bytes apart (word AT of each: a block's d, a min format's m, or a
// Q5 format's fifth-bit words), lane i from block i, read from the group's bytes in 64-byte vectors:
// one two-vector word permute per 128 bytes, each lane kept from the permute whose window holds its
// word. A gather of 16 blocks' scales took about a quarter of the row path's time in cache on an
// AMD EPYC (Zen 5).
template <int64_t BB, int AT, int L>
struct BlockWords {
  using T = BlockWordTable<BB, AT, L>;
  static constexpr int kWindows = T::kWindows;
  // The words of the blocks in the first `windows` windows, from the group's 128-byte windows raw[2k], raw[2k + 1].
  static __m512i words(const __m512i* raw, int windows) {
    __m512i out = _mm512_permutex2var_epi16(raw[0], _mm512_load_si512(T::kTable.word[0]), raw[1]);
    for (int k = 1; k < kWindows; k++)  // unrolled; the windows past the group's bytes skipped
      if (k < windows)
        out = _mm512_mask_mov_epi16(out, __mmask32(T::kTable.keep[k]),
                                    _mm512_permutex2var_epi16(raw[2 * k], _mm512_load_si512(T::kTable.word[k]), raw[2 * k + 1]));
    return out;
  }
};

// The E8M0 scales of an MXFP4 group's blocks (one byte at the start of each 17-byte block) as
// 2^(e − 128), from the group's bytes as loaded: the word permute lifts the word holding block i's
// byte (word ⌊17i/2⌋: its low byte for even i, its high byte for odd i), a shift by 0 or 8 a lane
// takes the byte. Then exponent bits (e − 1) << 23, or for e < 2 the subnormal 0x00200000 << e.
// Lanes past cnt are 0. Against a scalar gather of the 16 bytes: BENCHMARKS.md, "MXFP4 weights".
inline __m512 mxfp4Scales(const __m512i* raw, int windows, int64_t cnt) {
  const __m512i words = BlockWords<17, 0, 16>::words(raw, windows);
  const __m512i byte = _mm512_and_si512(_mm512_srlv_epi16(words, _mm512_set1_epi32(0x00080000)), _mm512_set1_epi16(0xff));
  const __m512i ev = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(byte));
  const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(ev, _mm512_set1_epi32(1)), 23);
  const __m512i tiny = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), ev);
  const __m512i bits = _mm512_mask_mov_epi32(normal, _mm512_cmplt_epu32_mask(ev, _mm512_set1_epi32(2)), tiny);
  return _mm512_maskz_mov_ps(__mmask16((1u << cnt) - 1), _mm512_castsi512_ps(bits));
}

// N rows of a 32-value block format with a 4- or 5-bit unsigned q (Q4_0, Q4_1, Q5_0, Q5_1) against
// T tokens (t0 on), rowsQ4K's way: N rows a quarter of the slice apart (four sequential streams; a
// small batch: one row, four tokens) and no lane sums until the rows end. Per 16 blocks of a row, a
// few word permutes (BlockWords) lift their f16 scales (and mins, and Q5's fifth bits) out of the
// bytes as they lie, and one vector multiply by the activations' d gives the 16 scales; the offsets
// (Q4_0 8d, Q5_0 16d, the min formats −m) meet the activations' d·Σq there too (in the dot's
// accumulator), so nothing is scalar per block. Two blocks a 512-bit vector: their 16 nibble bytes
// side by side, then shifted down by four, against activations in block32Order; Q5's fifth bits a
// byte mask in the same order, one qword a pair, laid out per group. The dot's lanes (blocks 0, 1,
// 0, 1 by fours) take their scales by one permute. IQ4_NL (VNNI builds only) runs the same with
// each nibble replaced by its level plus 128 (one byte shuffle: unsigned bytes for the
// unsigned-by-signed dot), the 128 taken back off as that offset: 128d. Against a pair loop that
// decoded each block's scale, offset and fifth bits in scalar code: BENCHMARKS.md, "The 32-value
// formats' row path". Groups of 32 blocks (one group a row for rows of 576 to 1024 values) were no
// faster in cache.
template <int QT, int N, int T = 1>
inline void rowsBlock32(const QuantMatmulArgs& a, const int8_t* xo, const int64_t* rows, int64_t t0 = 0) {
  constexpr int64_t BB = blockBytes(QT);
  constexpr bool kMin = QT == lk::kQ4_1 || QT == lk::kQ5_1, kFive = hasFifthBit(QT);
  constexpr bool kLevels = QT == lk::kIQ4_NL || QT == lk::kMXFP4;
  constexpr float kOff = QT == lk::kQ4_0 ? 8.0f : QT == lk::kQ5_0 ? 16.0f : kLevels ? 128.0f : 0.0f;
  constexpr int L = 16;  // blocks a group
  constexpr int kH = int(fifthBitsAt(QT) / 2);  // Q5: the fifth bits' first word in a block
  constexpr int kTop = kFive ? kH + 1 : kMin ? 1 : 0;  // the last word of a block read
  constexpr int kLoads = 2 * BlockWordTable<BB, kTop, L>::kWindows;
  // Blocks ahead of the pair in hand that each row's stream is prefetched: past the next group.
  constexpr int64_t kAhead = 32;
  const int64_t nb = a.cols / 32;
  const TokenActs<T> x(a, xo, t0);
  const __m512i low4 = _mm512_set1_epi8(15), five = _mm512_set1_epi8(0x10);
  const __m512i levels = QT == lk::kMXFP4 ? liftedMxfp4Levels() : liftedIq4nlLevels();
  // Q5: the permute that lays each pair of blocks' 64 fifth bits out in block32Order (block 0's
  // bits 0-15, block 1's, block 0's 16-31, block 1's) as one qword, from the blocks' low and high words.
  alignas(64) static constexpr int16_t kPairBits[32] = {0, 1, 32, 33, 2,  3,  34, 35, 4,  5,  36, 37, 6,  7,  38, 39,
                                                        8, 9, 40, 41, 10, 11, 42, 43, 12, 13, 44, 45, 14, 15, 46, 47};
  [[maybe_unused]] alignas(64) uint64_t fifth[N][8];
  const __m512i pair0 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1), two = _mm512_set1_epi32(2);
  const uint8_t* w[N];
  // The offsets' lanes (one a block) go into the same sum as the dot's (two a block): only its
  // total is the row's product.
  __m512 acc[N][T], sc[N][T];
  for (int n = 0; n < N; n++) {
    w[n] = a.w + rows[n] * nb * BB;
    for (int t = 0; t < T; t++) acc[n][t] = _mm512_setzero_ps();
  }
  for (int64_t g = 0; g < nb; g += L) {
    const int64_t cnt = std::min<int64_t>(L, nb - g);
    const int windows = int(((cnt - 1) * BB / 2 + kTop) / 64 + 1);  // 128-byte windows holding the group's words
    __mmask64 bytes[kLoads];
    for (int j = 0; j < kLoads; j++) {
      const int64_t left = std::clamp<int64_t>(cnt * BB - 64 * j, 0, 64);
      bytes[j] = left == 64 ? ~__mmask64(0) : (__mmask64(1) << left) - 1;
    }
    const __mmask16 live = __mmask16((1u << cnt) - 1);
    for (int n = 0; n < N; n++) {
      __m512i raw[kLoads];
      for (int j = 0; j < kLoads; j++) raw[j] = _mm512_maskz_loadu_epi8(bytes[j], w[n] + g * BB + 64 * j);
      const __m512 d = QT == lk::kMXFP4 ? mxfp4Scales(raw, windows, cnt)
                                        : _mm512_cvtph_ps(_mm512_castsi512_si256(BlockWords<BB, 0, L>::words(raw, windows)));
      if constexpr (kFive) {
        const __m512i lo = BlockWords<BB, kH, L>::words(raw, windows), hi = BlockWords<BB, kH + 1, L>::words(raw, windows);
        _mm512_store_si512(fifth[n], _mm512_permutex2var_epi16(lo, _mm512_load_si512(kPairBits), hi));
      }
      __m512 m;  // what a block's offset or min takes off per unit of the activations' d·Σq
      if constexpr (kMin) {
        m = _mm512_cvtph_ps(_mm512_castsi512_si256(BlockWords<BB, 1, L>::words(raw, windows)));
      } else {
        m = _mm512_mul_ps(d, _mm512_set1_ps(-kOff));
      }
      for (int t = 0; t < T; t++) {
        sc[n][t] = _mm512_mul_ps(d, _mm512_maskz_loadu_ps(live, x.d[t] + g));
        acc[n][t] = _mm512_fmadd_ps(m, _mm512_maskz_loadu_ps(live, x.ds32[t] + g), acc[n][t]);
      }
    }
    __m512i idx = pair0;
    int64_t k = 0;
    for (; 2 * k + 2 <= cnt; k++, idx = _mm512_add_epi32(idx, two)) {
      const int64_t b = g + 2 * k;
      for (int n = 0; n < N; n++) {
        const uint8_t* p = w[n] + b * BB;
        __builtin_prefetch(p + kAhead * BB, 0, 3);
        const __m256i both = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(p + BB + nibblesAt(QT)),
                                                 reinterpret_cast<const __m128i*>(p + nibblesAt(QT)));
        __m512i v =
            _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(both), _mm256_srli_epi16(both, 4), 1), low4);
        if constexpr (kLevels) v = _mm512_shuffle_epi8(levels, v);
        if constexpr (kFive)
          v = _mm512_or_si512(v, _mm512_maskz_mov_epi8(_load_mask64(reinterpret_cast<__mmask64*>(&fifth[n][k])), five));
        for (int t = 0; t < T; t++) {
          const __m512i xv = _mm512_loadu_si512(x.q[t] + b * 32);
          acc[n][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dotBytes512(v, xv)), _mm512_permutexvar_ps(idx, sc[n][t]), acc[n][t]);
        }
      }
    }
    if (2 * k < cnt) {  // a lone last block: its 32 values as they lie, lanes 0-7 of the dot
      const int64_t b = g + 2 * k;
      const __m512i lone = _mm512_set1_epi32(int(2 * k));
      for (int n = 0; n < N; n++) {
        const uint8_t* p = w[n] + b * BB;
        const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + nibblesAt(QT)));
        __m512i v = _mm512_and_si512(_mm512_zextsi256_si512(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs)), low4);
        if constexpr (kLevels) v = _mm512_shuffle_epi8(levels, v);
        if constexpr (kFive) {
          uint32_t bits;
          std::memcpy(&bits, p + fifthBitsAt(QT), 4);
          v = _mm512_or_si512(v, _mm512_maskz_mov_epi8(__mmask64(bits), five));
        }
        for (int t = 0; t < T; t++) {
          const __m512i xv = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q[t] + b * 32)));
          acc[n][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dotBytes512(v, xv)), _mm512_permutexvar_ps(lone, sc[n][t]), acc[n][t]);
        }
      }
    }
  }
  for (int t = 0; t < T; t++) {
    __m512 row[N];
    for (int n = 0; n < N; n++) row[n] = acc[n][t];
    storeRowSums<N>(a, rows, row, t0 + t);
  }
}

#if defined(__AVX512VNNI__)
// N IQ4_XS rows against T tokens (t0 on), rowsQ4K's way (N rows a quarter of the slice apart, no lane sums
// until the rows end). A 64-byte load of a group's quants holds blocks 4h..4h+3, 16 nibble bytes
// each: its low nibbles are the blocks' first 16 values, its high nibbles their last 16, against
// activations laid out once per call in that order (iq4xsOrder). Each nibble becomes its level
// plus 128 by one byte shuffle (unsigned bytes for the unsigned-by-signed VNNI dot), and the low and
// high halves go into one dot, whose lanes 4k..4k+3 are block 4h + k's (scales: iq4xsScaleVec).
// The +128 comes back off as 128 times
// each block's d·(ls − 32) times the activations' d·Σq, in a second accumulator.
template <int N, int T = 1>
inline void rowsIQ4XS(const QuantMatmulArgs& a, const int8_t* xo, const int64_t* rows, int64_t t0 = 0) {
  constexpr int64_t GB = 136;
  const int64_t ng = a.cols / 256;
  const uint8_t* w[N];
  for (int n = 0; n < N; n++) w[n] = a.w + rows[n] * ng * GB;
  const TokenActs<T> x(a, xo, t0);
  const __m512i low4 = _mm512_set1_epi8(15);
  const __m512i levels = liftedIq4nlLevels();
  const __m512i spread[2] = {_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                             _mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7)};
  __m512 acc[N][T][2];
  __m256 lift[N][T];
  for (int n = 0; n < N; n++)
    for (int t = 0; t < T; t++) {
      acc[n][t][0] = acc[n][t][1] = _mm512_setzero_ps();
      lift[n][t] = _mm256_setzero_ps();
    }
  for (int64_t gi = 0; gi < ng; gi++) {
    for (int n = 0; n < N; n++) {
      const uint8_t* g = w[n] + gi * GB;
      prefetchLines<GB>(g + kStreamAhead);
      const __m256 s = iq4xsScaleVec(g);
      __m512 sx[T];
      for (int t = 0; t < T; t++) {
        lift[n][t] = _mm256_fmadd_ps(s, _mm256_loadu_ps(x.ds32[t] + gi * 8), lift[n][t]);
        sx[t] = _mm512_castps256_ps512(_mm256_mul_ps(s, _mm256_loadu_ps(x.d[t] + gi * 8)));
      }
      for (int h = 0; h < 2; h++) {
        const __m512i qs = _mm512_loadu_si512(g + 8 + 64 * h);
        const __m512i lo = _mm512_shuffle_epi8(levels, _mm512_and_si512(qs, low4));
        const __m512i hi = _mm512_shuffle_epi8(levels, _mm512_and_si512(_mm512_srli_epi16(qs, 4), low4));
        for (int t = 0; t < T; t++) {
          const int8_t* xt = x.q[t] + gi * 256;
          __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(xt + 128 * h));
          p = _mm512_dpbusd_epi32(p, hi, _mm512_loadu_si512(xt + 128 * h + 64));
          acc[n][t][h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_permutexvar_ps(spread[h], sx[t]), acc[n][t][h]);
        }
      }
    }
  }
  for (int t = 0; t < T; t++) {
    __m512 row[N];
    for (int n = 0; n < N; n++)
      row[n] = _mm512_fnmadd_ps(_mm512_set1_ps(128.0f), _mm512_zextps256_ps512(lift[n][t]),
                                _mm512_add_ps(acc[n][t][0], acc[n][t][1]));
    storeRowSums<N>(a, rows, row, t0 + t);
  }
}

#endif

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

// A token's int8 activations with each 256-value group's blocks in rowsQ4K's order: 0 2 1 3 4 6 5 7.
inline void q4kOrder(const int8_t* xq, int64_t cols, int8_t* out) {
  static constexpr int kFrom[8] = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int64_t g = 0; g < cols; g += 256)
    for (int i = 0; i < 8; i++) std::memcpy(out + g + 32 * i, xq + g + 32 * kFrom[i], 32);
}

#else

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
#endif

#else  // portable: the same arithmetic in scalar code

inline void quantizeBlocks(const float* x, int64_t cols, uint8_t* row, int64_t b0, int64_t b1) {
  quantizeBlocksScalar(x, cols, row, b0, b1);
}

template <int QT, int R, int T>
inline void tile(const QuantMatmulArgs& a, int64_t r, int64_t rs, int64_t t) {
  const bool k = lk::isSuperBlock(QT);
  const int64_t nb = a.cols / 32, rowBytes = a.cols / (k ? 256 : 32) * blockBytes(QT);
  for (int i = 0; i < R; i++) {
    const int64_t row = r + i * rs;
    for (int j = 0; j < T; j++) {
      const uint8_t* x = a.xq + (t + j) * lk::actStride(a.cols);
      const int8_t* xq = lk::actQ(x, a.cols);
      const float* s16 = lk::actDs16(x, a.cols);
      float acc = 0.0f;
      for (int64_t b0 = 0; b0 < nb; b0 += 8) {
        // A group of up to 8 blocks: one K super-block, or Q8_0/Q4_0 blocks b0..b0+7.
        const uint8_t* g = a.w + row * rowBytes + (k ? (b0 / 8) * blockBytes(QT) : b0 * blockBytes(QT));
        const int n = int(std::min<int64_t>(8, nb - b0));
        GroupScales s;
        if (k || n == 8) groupScales(QT, g, s);
        else
          for (int b = 0; b < n; b++) {
            float d, off;
            blockScale(QT, g + b * blockBytes(QT), d, off);
            s.lo[b] = s.hi[b] = d;
            s.offLo[b] = s.offHi[b] = off;
          }
        for (int b = 0; b < n; b++) {
          int32_t v[32];
          blockInts<QT>(g, b, v);
          int32_t lo = 0, hi = 0;
          for (int e = 0; e < 16; e++) lo += v[e] * xq[(b0 + b) * 32 + e];
          for (int e = 16; e < 32; e++) hi += v[e] * xq[(b0 + b) * 32 + e];
          const float dx = lk::actD(x)[b0 + b];
          acc += dx * (s.lo[b] * float(lo) + s.hi[b] * float(hi)) - s.offLo[b] * s16[lk::ds16Index(b0 + b, 0)] -
                 s.offHi[b] * s16[lk::ds16Index(b0 + b, 1)];
        }
      }
      a.out[(t + j) * a.rows + row] = acc + (a.bias ? a.bias[row] : 0.0f);
    }
  }
}

#endif

void quantizeActs(uint8_t* dst, const float* x, int64_t cols, int64_t t0, int64_t t1) {
  const int64_t xs = lk::actStride(cols);
  for (int64_t t = t0; t < t1; t++) {
    uint8_t* row = dst + t * xs;
    // Unused ds16 slots of a last partial group stay defined.
    std::fill(reinterpret_cast<float*>(row), reinterpret_cast<float*>(row) + lk::actFloats(cols), 0.0f);
    quantizeBlocks(x + t * cols, cols, row, 0, cols / 32);
  }
}

// A small batch's tokens go against each row (or group of rows) in chunks of up to kChunkTokens,
// the row decoded once a chunk. On the 512-bit row paths one row and four tokens measured best at
// batches 2 and 4 for Q4_K and Q6_K (4096x4096, two threads) against two rows of two or four
// tokens, four rows of two, and one row of eight, whose accumulators no longer fit the registers.
constexpr int kChunkTokens = 4;

// Tokens [t, nTokens) of a small batch against the same rows, in chunks of T, then T / 2, ... 1:
// kernel(T, t0) for each (a chunk after the first finds the rows in L1).
template <int T, typename Kernel>
inline void inTokenChunks(int64_t t, int64_t nTokens, Kernel kernel) {
  for (; t + T <= nTokens; t += T) kernel(std::integral_constant<int, T>{}, t);
  if constexpr (T > 1) inTokenChunks<T / 2>(t, nTokens, kernel);
}

#if defined(__AVX2__)
// Rows [r0, r1) of one token as S sequential streams a slice's S-th apart: kernel(N, rows) gets
// rows r, r + q, ... (N = S) while whole streams last, then each row left over alone (N = 1).
template <int S, typename Kernel>
inline void inStreams(int64_t r0, int64_t r1, Kernel kernel) {
  const int64_t q = (r1 - r0) / S;
  int64_t r = r0;
  for (; r < r0 + q; r++) {
    int64_t rows[S];
    for (int i = 0; i < S; i++) rows[i] = r + i * q;
    kernel(std::integral_constant<int, S>{}, rows);
  }
  for (r = r0 + S * q; r < r1; r++) kernel(std::integral_constant<int, 1>{}, &r);
}

#if defined(LK_ROW_Q4K_512)
// A small batch on a 512-bit row path: kernel(T, &row, t0) for each row and chunk of tokens. The
// rows go in groups of about 16 KiB, each group's rows against one chunk after another: a chunk's
// activations (4 KiB a token of 4096 values, and their scales) and the group's rows stay in L1
// together, where two chunks' activations against one row at a time pushed the rows out.
template <int QT, typename Kernel>
inline void smallBatch(const QuantMatmulArgs& a, int64_t r0, int64_t r1, Kernel kernel) {
  const int64_t rowBytes = a.cols / (lk::isSuperBlock(QT) ? 256 : 32) * blockBytes(QT);
  const int64_t group = std::max<int64_t>(1, (int64_t(16) << 10) / rowBytes);
  for (int64_t g = r0; g < r1; g += group) {
    const int64_t g1 = std::min(r1, g + group);
    inTokenChunks<kChunkTokens>(0, a.nTokens, [&](auto t, int64_t t0) {
      for (int64_t r = g; r < g1; r++) kernel(t, &r, t0);
    });
  }
}
#endif

#include "quant_packed_rows.h"

// The tokens' int8 activations reordered once per call for a row path (cols bytes a token), in a
// per-thread buffer that grows to the widest batch once.
inline const int8_t* orderedActs(const QuantMatmulArgs& a, void (*order)(const int8_t*, int64_t, int8_t*)) {
  thread_local std::vector<int8_t> buf;
  if (buf.size() < size_t(a.cols * a.nTokens)) buf.resize(size_t(a.cols * a.nTokens));
  for (int64_t t = 0; t < a.nTokens; t++)
    order(lk::actQ(a.xq + t * lk::actStride(a.cols), a.cols), a.cols, buf.data() + t * a.cols);
  return buf.data();
}
#endif

// Rows [r0, r1): a batch of at least kPanelFrom tokens runs the panels (quant_panel.h); a smaller
// one the row paths, the 512-bit ones and the lane-sum tile with its tokens in chunks of four
// against each row (decoded once a chunk), the AVX2 builds' Q4_K and IQ4_XS a token at a time. One
// token on AVX-512 Q4_K reads four rows a quarter of the range apart (rowsQ4K), on AVX2 Q4_K one
// row after another (rowQ4K); with the lane-sum tile it reads the rows one after another, one
// sequential stream (four streams, as the float matvec reads them, measured 2-4x slower from DRAM
// with this tile: its decoding, not the bytes, sets the pace, and four rows' worth of it between
// one stream's loads left the loads late). Without AVX2 a batch takes two rows at a time against
// four tokens, so each decoded group serves eight dot products.
template <int QT>
void matmulRange(const QuantMatmulArgs& a, int64_t r0, int64_t r1);

// A small batch on a row path that takes one token: the rows [r0, r1) once a token (they stay in
// the cache between tokens when the slice is small).
template <int QT>
void eachToken(const QuantMatmulArgs& a, int64_t r0, int64_t r1) {
  for (int64_t t = 0; t < a.nTokens; t++) {
    QuantMatmulArgs one = a;
    one.xq = a.xq + t * lk::actStride(a.cols);
    one.out = a.out + t * a.rows;
    one.nTokens = 1;
    matmulRange<QT>(one, r0, r1);
  }
}

template <int QT>
void matmulRange(const QuantMatmulArgs& a, int64_t r0, int64_t r1) {
#if defined(__AVX2__)
  if (a.nTokens >= kPanelFrom[QT]) return panelRange<QT>(a, r0, r1);
#if defined(LK_ROW_Q4K_512)
#if defined(__AVX512VNNI__)
  constexpr bool kRows32 = nibbleBlock(QT) || QT == lk::kIQ4_NL || QT == lk::kMXFP4;
#else
  constexpr bool kRows32 = nibbleBlock(QT);  // IQ4_NL's lifted levels would saturate vpmaddubsw
#endif
  if constexpr (kRows32) {
    const int8_t* xo = orderedActs(a, block32Order);
    if (a.nTokens > 1)
      return smallBatch<QT>(a, r0, r1, [&](auto t, const int64_t* rows, int64_t t0) {
        rowsBlock32<QT, 1, decltype(t)::value>(a, xo, rows, t0);
      });
    return inStreams<4>(r0, r1, [&](auto n, const int64_t* rows) { rowsBlock32<QT, decltype(n)::value>(a, xo, rows); });
  }
  if constexpr (QT == lk::kQ4_K || QT == lk::kQ5_K) {
    const int8_t* xo = orderedActs(a, q4kOrder);
    if (a.nTokens > 1)
      return smallBatch<QT>(a, r0, r1, [&](auto t, const int64_t* rows, int64_t t0) {
        rowsQ4K<QT, 1, decltype(t)::value>(a, xo, rows, t0);
      });
    // Q5_K's bits take the registers four rows' state would need: two streams, half the slice apart.
    constexpr int S = QT == lk::kQ5_K ? 2 : 4;
    return inStreams<S>(r0, r1, [&](auto n, const int64_t* rows) { rowsQ4K<QT, decltype(n)::value>(a, xo, rows); });
  }
  if constexpr (QT == lk::kQ6_K || QT == lk::kQ3_K || QT == lk::kQ2_K) {
    if (a.nTokens > 1)
      return smallBatch<QT>(a, r0, r1, [&](auto t, const int64_t* rows, int64_t t0) {
        rowsHalves<QT, 1, decltype(t)::value>(a, rows, t0);
      });
    // Q3_K's third bits take the registers four rows' state would need: two streams, half the
    // slice apart (four: 25-27% of the streaming read on two threads, two: 48-51%, one: 44-45%).
    constexpr int S = QT == lk::kQ3_K ? 2 : 4;
    return inStreams<S>(r0, r1, [&](auto n, const int64_t* rows) { rowsHalves<QT, decltype(n)::value>(a, rows); });
  }
#if defined(__AVX512VNNI__)
  if constexpr (QT == lk::kIQ4_XS) {
    const int8_t* xo = orderedActs(a, iq4xsOrder);
    if (a.nTokens > 1)
      return smallBatch<QT>(a, r0, r1, [&](auto t, const int64_t* rows, int64_t t0) {
        rowsIQ4XS<1, decltype(t)::value>(a, xo, rows, t0);
      });
    return inStreams<4>(r0, r1, [&](auto n, const int64_t* rows) { rowsIQ4XS<decltype(n)::value>(a, xo, rows); });
  }
#endif
#else
  if constexpr (QT == lk::kQ4_K) {
    if (a.nTokens > 1) return eachToken<QT>(a, r0, r1);
    for (int64_t r = r0; r < r1; r++) rowQ4K(a, r);
    return;
  }
  if constexpr (QT == lk::kIQ4_XS) {
    if (a.nTokens > 1) return eachToken<QT>(a, r0, r1);
    const int8_t* xo = orderedActs(a, iq4xsOrder);
    for (int64_t r = r0; r < r1; r++) rowIQ4XS(a, xo, r);
    return;
  }
#endif
  // The lane-sum tile, one row at a time; a small batch's tokens in chunks against the row.
  for (int64_t r = r0; r < r1; r++)
    inTokenChunks<kChunkTokens>(0, a.nTokens, [&](auto t, int64_t t0) { tile<QT, 1, decltype(t)::value>(a, r, 1, t0); });
#else
  if (a.nTokens == 1) {
    for (int64_t r = r0; r < r1; r++) tile<QT, 1, 1>(a, r, 1, 0);
    return;
  }
  auto tokens = [&](auto rowsTag, int64_t r) {
    inTokenChunks<kChunkTokens>(0, a.nTokens, [&](auto t, int64_t t0) {
      tile<QT, decltype(rowsTag)::value, decltype(t)::value>(a, r, 1, t0);
    });
  };
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) tokens(std::integral_constant<int, 2>{}, r);
  if (r < r1) tokens(std::integral_constant<int, 1>{}, r);
#endif
}

#if defined(LK_PACKED_ROWS)
// Row groups [g0, g1) of a matrix packed with 16 rows in the lanes (quant_pack.h; a packable format,
// which the caller checks), a batch under the table's packedTo.
void matmulPacked(const QuantMatmulArgs& a, const uint8_t* packed, int64_t g0, int64_t g1) {
  switch (a.qtype) {
    case lk::kQ8_0:
      return packedGroups<lk::kQ8_0>(a, packed, g0, g1);
    case lk::kQ4_0:
      return packedGroups<lk::kQ4_0>(a, packed, g0, g1);
    case lk::kQ4_1:
      return packedGroups<lk::kQ4_1>(a, packed, g0, g1);
    case lk::kQ5_1:
      return packedGroups<lk::kQ5_1>(a, packed, g0, g1);
    case lk::kIQ4_NL:
      return packedGroups<lk::kIQ4_NL>(a, packed, g0, g1);
    default:
      return packedGroups<lk::kQ5_0>(a, packed, g0, g1);
  }
}
#endif

void matmul(const QuantMatmulArgs& a, int64_t r0, int64_t r1) {
  switch (a.qtype) {
    case lk::kQ8_0:
      return matmulRange<lk::kQ8_0>(a, r0, r1);
    case lk::kQ4_0:
      return matmulRange<lk::kQ4_0>(a, r0, r1);
    case lk::kQ4_K:
      return matmulRange<lk::kQ4_K>(a, r0, r1);
    case lk::kQ4_1:
      return matmulRange<lk::kQ4_1>(a, r0, r1);
    case lk::kQ5_0:
      return matmulRange<lk::kQ5_0>(a, r0, r1);
    case lk::kQ5_1:
      return matmulRange<lk::kQ5_1>(a, r0, r1);
    case lk::kQ5_K:
      return matmulRange<lk::kQ5_K>(a, r0, r1);
    case lk::kQ3_K:
      return matmulRange<lk::kQ3_K>(a, r0, r1);
    case lk::kQ2_K:
      return matmulRange<lk::kQ2_K>(a, r0, r1);
    case lk::kIQ4_NL:
      return matmulRange<lk::kIQ4_NL>(a, r0, r1);
    case lk::kIQ4_XS:
      return matmulRange<lk::kIQ4_XS>(a, r0, r1);
    case lk::kMXFP4:
      return matmulRange<lk::kMXFP4>(a, r0, r1);
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
#if defined(__AVX2__)
  static const QuantTable table = {LK_QSTR(LK_VARIANT), LK_VARIANT::quantizeActs, LK_VARIANT::matmul,
                                   {LK_VARIANT::kPanelFrom[0], LK_VARIANT::kPanelFrom[1], LK_VARIANT::kPanelFrom[2],
                                    LK_VARIANT::kPanelFrom[3], LK_VARIANT::kPanelFrom[4], LK_VARIANT::kPanelFrom[5],
                                    LK_VARIANT::kPanelFrom[6], LK_VARIANT::kPanelFrom[7], LK_VARIANT::kPanelFrom[8],
                                    LK_VARIANT::kPanelFrom[9], LK_VARIANT::kPanelFrom[10], LK_VARIANT::kPanelFrom[11],
                                    LK_VARIANT::kPanelFrom[12]},
#if defined(LK_PACKED_ROWS)
                                   LK_VARIANT::matmulPacked, LK_VARIANT::kPackedTo};
#else
                                   nullptr, 0};
#endif
#else
  // The scalar tile takes a batch at any size.
  static const QuantTable table = {LK_QSTR(LK_VARIANT), LK_VARIANT::quantizeActs, LK_VARIANT::matmul, {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}, nullptr, 0};
#endif
  return &table;
}

}  // namespace lk
