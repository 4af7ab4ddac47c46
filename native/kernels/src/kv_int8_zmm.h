// int8 KV attention on 512-bit vectors for the AVX-512 variants (included by kv_int8.h), through
// AVX-512 VNNI's vpdpbusd where the CPU has it (kv_int8.h asks once), else (Skylake and other
// AVX-512 CPUs without VNNI) through vpmaddubsw and vpmaddwd against ones, as the AVX2 path does
// without AVX-VNNI (kv_int8_ymm.h): K's magnitudes against the query carrying K's signs (a masked
// subtraction, AVX-512 having no vpsignb), probabilities rounded to 7 bits, so no 16-bit pair of
// products saturates. No function carries a target attribute: vpdpbusd is inline assembly, the
// rest AVX-512 F/BW.
//
// Scores: each query head is rounded to int8 once per task (symmetric, absmax / 127); keys are
// read as unsigned by flipping their sign bits (k + 128), so one vpdpbusd multiplies 4 pairs and
// sum (k + 128) · q = k · q + 128 · sum q, whose second term is known per head. The K layout
// (kv_int8.h) puts 16 elements of a group's four keys in 64 bytes, 4 of one key per 32-bit lane,
// so one vpdpbusd against the query's matching quads (each repeated over its 128-bit lane) gives
// four partial sums of each of the four keys. A tile is 4 groups (16 keys) x 1, 2 or 4 heads; the
// four groups' sums of a head are added across 128-bit lanes into one vector of 16 scores.
// Values: each step's probabilities, V scale folded in, are rounded to 8 bits against the step's
// largest (a scale per head and step); the V layout (kv_int8.h) puts element d of a group's four
// keys in one 32-bit lane, so one vpdpbusd against the four probabilities broadcast sums the
// group's keys into 16 elements at once. Integer sums are folded into fp32 once per step.
//
// Precision beyond the cache's own rounding: q to int8 (1/254 of each head's largest element) and
// the probabilities to 8 bits (1/510 of a step's largest, absolute; 7 bits and 1/254 without
// VNNI); the softmax's denominator is summed from the unrounded probabilities.
#pragma once
#include "kv_int8_dot.h"

#if defined(__AVX512F__) && defined(__AVX512BW__)
#define LK_I8_ZMM 1

namespace LK_VARIANT {
namespace i8 {

// Lanes 4i..4i+3 of the result: the four 32-bit lanes of v[i], each summed over v[i]'s four
// 128-bit lanes (a group's four keys, from their partial sums over quads 4c + lane).
__attribute__((always_inline)) inline __m512i reduce4(const __m512i* v) {
  const __m512i y01 = _mm512_add_epi32(_mm512_shuffle_i32x4(v[0], v[1], 0x44), _mm512_shuffle_i32x4(v[0], v[1], 0xee));
  const __m512i y23 = _mm512_add_epi32(_mm512_shuffle_i32x4(v[2], v[3], 0x44), _mm512_shuffle_i32x4(v[2], v[3], 0xee));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(y01, y23, 0x88), _mm512_shuffle_i32x4(y01, y23, 0xdd));
}

// acc += the 4-byte dot products of u8 lanes of a with s8 lanes of b, where no pair of products
// exceeds 32,767 in magnitude unless Vnni. vpdpbusd as inline assembly: GCC copies the accumulator
// around each intrinsic (the instruction overwrites it), which tripled the instructions of the
// tiles below.
template <bool Vnni>
inline void dotBytes(__m512i& acc, __m512i a, __m512i b) {
  if constexpr (Vnni) asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  else acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(a, b), _mm512_set1_epi16(1)));
}

// The kScales of a tile's 4 groups (a group past the step's last reads the first's).
inline __m512 tileKScale(const float* ks, const Step& st, int64_t gi0) {
  auto grp = [&](int gl) { return _mm_loadu_ps(ks + st.row[gi0 + gl < st.n ? gi0 + gl : gi0]); };
  __m512 r = _mm512_castps128_ps512(grp(0));
  r = _mm512_insertf32x4(r, grp(1), 1);
  r = _mm512_insertf32x4(r, grp(2), 2);
  return _mm512_insertf32x4(r, grp(3), 3);
}

// acc[g] (nc vectors of 16) += this step's V groups weighted by the heads' byte probabilities, HG
// heads x NC column vectors held in registers over the step; then folded in fp32: acc · corr +
// sum · unit. pace(bytes) is told before each group's NC * 64 bytes are read.
template <bool Vnni, int HG, int NC, typename Pace>
inline void zmmValueCols(DotScratch& s, const Step& st, const int8_t* vBase, int64_t D, int64_t dc,
                                  int64_t g0, int64_t c0, Pace& pace) {
  __m512i sum[HG][NC];
#pragma GCC unroll 4
  for (int g = 0; g < HG; g++)
#pragma GCC unroll 4
    for (int c = 0; c < NC; c++) sum[g][c] = _mm512_setzero_si512();
  const int64_t bytes = 4 * D;
  __mmask64 masks[NC];
#pragma GCC unroll 4
  for (int c = 0; c < NC; c++) {
    const int64_t n = bytes - (c0 + c) * 64;
    masks[c] = n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1;
  }
  const ByteWord* words = reinterpret_cast<const ByteWord*>(s.p8.data() + g0 * kStepKeys);  // 4 bytes a group
  for (int64_t gi = 0; gi < st.n; gi++) {
    pace(NC * 64);
    const int8_t* vg = vBase + st.row[gi] * D + c0 * 64;
    __m512i v[NC];
#pragma GCC unroll 4
    for (int c = 0; c < NC; c++) v[c] = _mm512_maskz_loadu_epi8(masks[c], vg + c * 64);
#pragma GCC unroll 4
    for (int g = 0; g < HG; g++) {
      const __m512i w = _mm512_set1_epi32(words[g * (kStepKeys / 4) + gi]);
#pragma GCC unroll 4
      for (int c = 0; c < NC; c++) dotBytes<Vnni>(sum[g][c], w, v[c]);
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < HG; g++) {
    float* ag = s.acc.data() + (g0 + g) * dc;
    const __m512 corr = _mm512_set1_ps(s.corr[g0 + g]), unit = _mm512_set1_ps(s.unit[g0 + g]);
#pragma GCC unroll 4
    for (int c = 0; c < NC; c++) {
      float* at = ag + (c0 + c) * 16;
      _mm512_storeu_ps(at, _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[g][c]), unit, _mm512_mul_ps(_mm512_loadu_ps(at), corr)));
    }
  }
}

// The kernels of the shared step loop (kv_int8_dot.h) on 512-bit vectors, through vpdpbusd where
// Vnni, else vpmaddubsw and vpmaddwd.
template <bool Vnni>
struct Zmm {
  static constexpr int kMaxHeads = 4;
  // The largest probability as a byte: 8 bits for vpdpbusd, 7 where a pair of products must stay
  // under 32,768.
  static constexpr float kProbMax = Vnni ? 255.0f : 127.0f;

  // Each query head of the task rounded to int8, with its sum and scale, and arranged for the K
  // layout: per 64 bytes c of a group (elements 16c..16c+15 of four keys), quad 4c + i repeated
  // over 128-bit lane i.
  LK_I8_TILE static void quantizeQueries(DotScratch& s, const float* q, int64_t H, int64_t D, int64_t dp, float scale) {
    const int64_t nc = (4 * D + 63) / 64;
    const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    for (int64_t g = 0; g < H; g++) {
      const int8_t* q8 = quantizeQueryHead(s, q, g, D, dp, scale);
      for (int64_t c = 0; c < nc; c++) {
        const __m512i quads = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q8 + 16 * c)));
        _mm512_storeu_si512(s.qArr.data() + (g * nc + c) * 64, _mm512_permutexvar_epi32(spread, quads));
      }
    }
  }

  // Scores of HG heads x the 4 groups from gi0 of one KV head: p[g * kStepKeys + 4 * group + lane].
  // Groups past st.n give scores nobody reads.
  // pace(bytes) is told before each 64-byte column of the 4 groups is read (the read-ahead).
  template <int HG, typename Pace>
  LK_I8_TILE static void scoreTile(const DotScratch& s, const lk::AttnArgs& a, const Step& st, int64_t gi0,
                                int64_t g0, int64_t headRow, float* p, Pace& pace) {
    const int64_t D = a.cache.headDim, bytes = 4 * D, nc = (bytes + 63) / 64;
    const int8_t* k8 = static_cast<const int8_t*>(a.cache.k);
    const __m512i flip = _mm512_set1_epi8(int8_t(0x80));
    __m512i acc[HG][4];
  #pragma GCC unroll 4
    for (int g = 0; g < HG; g++)
  #pragma GCC unroll 4
      for (int gl = 0; gl < 4; gl++) acc[g][gl] = _mm512_setzero_si512();
    const int8_t* rows[4];
  #pragma GCC unroll 4
    for (int gl = 0; gl < 4; gl++) rows[gl] = k8 + (st.row[gi0 + gl < st.n ? gi0 + gl : gi0] + headRow) * D;
    const int8_t* qa = s.qArr.data() + g0 * nc * 64;
    for (int64_t c = 0; c < nc; c++) {
      pace(4 * 64);
      const int64_t left = bytes - c * 64;
      const __mmask64 mask = left >= 64 ? ~__mmask64(0) : (__mmask64(1) << left) - 1;
      __m512i qv[HG];
  #pragma GCC unroll 4
      for (int g = 0; g < HG; g++) qv[g] = _mm512_loadu_si512(qa + (g * nc + c) * 64);
  #pragma GCC unroll 4
      for (int gl = 0; gl < 4; gl++) {
        const __m512i k = _mm512_maskz_loadu_epi8(mask, rows[gl] + c * 64);
        if constexpr (Vnni) {
          const __m512i ku = _mm512_xor_si512(k, flip);  // k + 128 as unsigned
  #pragma GCC unroll 4
          for (int g = 0; g < HG; g++) dotBytes<true>(acc[g][gl], ku, qv[g]);
        } else {
          // |k| . (q negated where k < 0) = k . q
          const __m512i ka = _mm512_abs_epi8(k);
          const __mmask64 neg = _mm512_movepi8_mask(k);
  #pragma GCC unroll 4
          for (int g = 0; g < HG; g++)
            dotBytes<false>(acc[g][gl], ka, _mm512_mask_sub_epi8(qv[g], neg, _mm512_setzero_si512(), qv[g]));
        }
      }
    }
    // (dot - 128 · sum q, where K's sign bits were flipped) · qFac · kScale, key by key.
    const __m512 ks = tileKScale(a.cache.kScale + headRow, st, gi0);
  #pragma GCC unroll 4
    for (int g = 0; g < HG; g++) {
      const __m512i dots = _mm512_sub_epi32(reduce4(acc[g]), _mm512_set1_epi32(Vnni ? 128 * s.qSum[size_t(g0 + g)] : 0));
      const __m512 sc = _mm512_mul_ps(_mm512_cvtepi32_ps(dots), _mm512_mul_ps(_mm512_set1_ps(s.qFac[size_t(g0 + g)]), ks));
      _mm512_storeu_ps(p + (g0 + g) * kStepKeys + gi0 * 4, sc);
    }
  }

  template <int HG, typename Pace>
  LK_I8_TILE static void values(DotScratch& s, const Step& st, const int8_t* vBase, int64_t D, int64_t dc, int64_t g0,
                             Pace& pace) {
    const int64_t nc = dc / 16;
    int64_t c = 0;
    for (; c + 4 <= nc; c += 4) zmmValueCols<Vnni, HG, 4>(s, st, vBase, D, dc, g0, c, pace);
    for (; c < nc; c++) zmmValueCols<Vnni, HG, 1>(s, st, vBase, D, dc, g0, c, pace);
  }

  // Head g's online-softmax step (stepProbabilities), its probabilities rounded to bytes against the
  // largest.
  LK_I8_TILE static void softmax(DotScratch& s, int64_t g, const Step& st, const lk::AttnArgs& a) {
    const __m512 toByte = _mm512_set1_ps(stepProbabilities(s, g, st, a, kProbMax));
    const float* row = s.p.data() + g * kStepKeys;
    uint8_t* p8 = s.p8.data() + g * kStepKeys;
    for (int64_t j = 0; j < stepLanes(st); j += 16) {  // round half to even (the default mode), 0..kProbMax
      const __m512i b = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(row + j), toByte));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p8 + j), _mm512_cvtusepi32_epi8(b));
    }
  }
};

// Whether this CPU runs vpdpbusd on zmm registers (asked once).
inline bool hasVnni() {
  static const bool yes = __builtin_cpu_supports("avx512vnni");
  return yes;
}

}  // namespace i8
}  // namespace LK_VARIANT

#endif
