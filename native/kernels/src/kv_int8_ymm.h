// int8 KV attention on 256-bit vectors for the AVX2 variant (included by kv_int8.h), through one of
// two byte products:
//   AVX-VNNI (Alder Lake and later, Sierra Forest, Zen 5): vpdpbusd, VEX-encoded, sums four u8 x s8
//     products into each 32-bit lane. Taken only where the CPU reports it (kv_int8.h asks once).
//   AVX2 alone (Haswell to Comet Lake, Zen 2 and 3): vpmaddubsw sums pairs of the same products into
//     saturating 16-bit lanes and vpmaddwd against ones adds the pairs, the same lane sums in two
//     instructions. So that no pair saturates (each product at most 127 x 127, a pair 32,258), the
//     scores multiply K's magnitudes by the query carrying K's signs (vpsignb) where the VNNI path
//     flips K's sign bits, and the probabilities are rounded to 7 bits instead of 8.
// Against the widening path (K and V widened to fp32, no read-ahead) that both CPUs took before, the
// byte products took a call (batch 8, context 16,384, 8 KV heads, 2 threads) from 33-35 to 13-16 ms
// on an AVX-512 EPYC running this build (BENCHMARKS.md).
//
// The arithmetic and the layouts are the AVX-512 path's (kv_int8_zmm.h), on half the width: a
// 64-byte column of a K group is taken as two 32-byte halves (quads 4c, 4c + 1 and 4c + 2, 4c + 3
// of the four keys) against the same arrangement of the query (each quad repeated over its 128-bit
// lane), and each key's partial sums are added across the two 128-bit lanes at the end; V is
// summed 8 elements a vector. Sixteen ymm registers hold 8 score accumulators: 2 heads x 4 groups, or
// 4 heads x 2 groups (Ymm::kMaxHeads). Head sizes must be a multiple of 8 (whole 32-byte halves:
// AVX2 has no byte-masked loads); other heads take the widening path. No function carries a target
// attribute: vpdpbusd is written as inline assembly, and the rest is AVX2.
#pragma once
#include "cpu_select.h"
#include "kv_int8_dot.h"

#if defined(__AVX2__) && !defined(__AVX512F__)
#define LK_I8_YMM 1

namespace LK_VARIANT {
namespace i8 {

// acc += the 4-byte dot products of u8 lanes of a with s8 lanes of b, where no pair of products
// exceeds 32,767 in magnitude unless Vnni. vpdpbusd as inline assembly, as on AVX-512: the
// intrinsic's copies of the accumulator multiplied the instructions.
template <bool Vnni>
inline void dotBytes(__m256i& acc, __m256i a, __m256i b) {
  if constexpr (Vnni) asm("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
  else acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)));
}

// acc[g] += this step's V groups weighted by the heads' byte probabilities, HG heads x NC vectors
// of 8 elements (32 bytes of a group: element d of its four keys a 32-bit lane) from element 8 * c0,
// held in registers over the step; then folded in fp32: acc · corr + sum · unit.
template <bool Vnni, int HG, int NC, typename Pace>
inline void ymmValueCols(DotScratch& s, const Step& st, const int8_t* vBase, int64_t D, int64_t dc,
                                    int64_t g0, int64_t c0, Pace& pace) {
  __m256i sum[HG][NC];
  for (int g = 0; g < HG; g++)
    for (int c = 0; c < NC; c++) sum[g][c] = _mm256_setzero_si256();
  const ByteWord* words = reinterpret_cast<const ByteWord*>(s.p8.data() + g0 * kStepKeys);  // 4 bytes a group
  for (int64_t gi = 0; gi < st.n; gi++) {
    pace(NC * 32);
    const int8_t* vg = vBase + st.row[gi] * D + c0 * 32;
    __m256i v[NC];
    for (int c = 0; c < NC; c++) v[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vg + c * 32));
    for (int g = 0; g < HG; g++) {
      const __m256i w = _mm256_set1_epi32(words[g * (kStepKeys / 4) + gi]);
      for (int c = 0; c < NC; c++) dotBytes<Vnni>(sum[g][c], w, v[c]);
    }
  }
  for (int g = 0; g < HG; g++) {
    float* ag = s.acc.data() + (g0 + g) * dc;
    const __m256 corr = _mm256_set1_ps(s.corr[g0 + g]), unit = _mm256_set1_ps(s.unit[g0 + g]);
    for (int c = 0; c < NC; c++) {
      float* at = ag + (c0 + c) * 8;
      _mm256_storeu_ps(at, _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[g][c]), unit, _mm256_mul_ps(_mm256_loadu_ps(at), corr)));
    }
  }
}

// The kernels of the shared step loop (kv_int8_dot.h) on 256-bit vectors, through vpdpbusd where
// Vnni, else vpmaddubsw and vpmaddwd.
template <bool Vnni>
struct Ymm {
  // Head tiles: 4 heads (their scores two groups at a time) for vpdpbusd, 1.4x faster than 2 on
  // keys in L2; 2 for vpmaddubsw, whose products take two more registers (level at 4).
  static constexpr int kMaxHeads = Vnni ? 4 : 2;
  // The largest probability as a byte: 8 bits for vpdpbusd, 7 where a pair of products must stay
  // under 32,768 (255 x 127 twice would not).
  static constexpr float kProbMax = Vnni ? 255.0f : 127.0f;
  // Each query head rounded to int8 and arranged as the AVX-512 path does (per 64 bytes c of a
  // group, quad 4c + i repeated over 128-bit lane i), so each 32-byte half lines up with K's.
  LK_I8_TILE static void quantizeQueries(DotScratch& s, const float* q, int64_t H, int64_t D, int64_t dp,
                                         float scale) {
    const int64_t nc = (4 * D + 63) / 64;
    for (int64_t g = 0; g < H; g++) {
      const int8_t* q8 = quantizeQueryHead(s, q, g, D, dp, scale);
      for (int64_t c = 0; c < nc; c++) {
        int8_t* dst = s.qArr.data() + (g * nc + c) * 64;
        for (int i = 0; i < 4; i++) {
          const __m128i quad = _mm_set1_epi32(*reinterpret_cast<const ByteWord*>(q8 + 16 * c + 4 * i));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16 * i), quad);
        }
      }
    }
  }
  template <int HG, typename Pace>
  static void values(DotScratch& s, const Step& st, const int8_t* vBase, int64_t D, int64_t dc, int64_t g0,
                                Pace& pace) {
    const int64_t n8 = D / 8;
    int64_t c = 0;
    constexpr int NC = HG >= 4 ? 2 : 4;  // at most 8 accumulators
    for (; c + NC <= n8; c += NC) ymmValueCols<Vnni, HG, NC>(s, st, vBase, D, dc, g0, c, pace);
    for (; c < n8; c++) ymmValueCols<Vnni, HG, 1>(s, st, vBase, D, dc, g0, c, pace);
  }

  // Scores of HG heads x the 4 groups from gi0 of one KV head: p[g * kStepKeys + 4 * group + lane].
  // Groups past st.n give scores nobody reads. pace(bytes) is told before each 64-byte column.
  // Four heads take the groups two at a time (8 accumulators), so each K load serves all four.
  template <int HG, typename Pace>
  static void scoreTile(const DotScratch& s, const lk::AttnArgs& a, const Step& st, int64_t gi0, int64_t g0,
                        int64_t headRow, float* p, Pace& pace) {
    if constexpr (HG == 4) {
      scoreGroups<4, 2>(s, a, st, gi0, g0, headRow, p, pace);
      scoreGroups<4, 2>(s, a, st, gi0 + 2, g0, headRow, p, pace);
    } else {
      scoreGroups<HG, 4>(s, a, st, gi0, g0, headRow, p, pace);
    }
  }

  // HG heads x NG groups from gi0 (groups past st.n read the step's first and give scores nobody reads).
  template <int HG, int NG, typename Pace>
  static void scoreGroups(const DotScratch& s, const lk::AttnArgs& a, const Step& st, int64_t gi0, int64_t g0,
                          int64_t headRow, float* p, Pace& pace) {
    const int64_t D = a.cache.headDim, nc = (4 * D + 63) / 64, halves = 4 * D / 32;
    const int8_t* k8 = static_cast<const int8_t*>(a.cache.k);
    const __m256i flip = _mm256_set1_epi8(int8_t(0x80));
    __m256i acc[HG][NG];
    for (int g = 0; g < HG; g++)
      for (int gl = 0; gl < NG; gl++) acc[g][gl] = _mm256_setzero_si256();
    const int8_t* rows[NG];
    for (int gl = 0; gl < NG; gl++) rows[gl] = k8 + (st.row[gi0 + gl < st.n ? gi0 + gl : 0] + headRow) * D;
    const int8_t* qa = s.qArr.data() + g0 * nc * 64;
    for (int64_t h = 0; h < halves; h++) {
      if ((h & 1) == 0) pace(NG * 64);
      __m256i qv[HG];
      for (int g = 0; g < HG; g++) qv[g] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qa + g * nc * 64 + h * 32));
      for (int gl = 0; gl < NG; gl++) {
        const __m256i k = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[gl] + h * 32));
        if constexpr (Vnni) {
          const __m256i ku = _mm256_xor_si256(k, flip);  // k + 128 as unsigned
          for (int g = 0; g < HG; g++) dotBytes<true>(acc[g][gl], ku, qv[g]);
        } else {
          const __m256i ka = _mm256_abs_epi8(k);  // |k| . (q with k's sign) = k . q (k = 0: q zeroed)
          for (int g = 0; g < HG; g++) dotBytes<false>(acc[g][gl], ka, _mm256_sign_epi8(qv[g], k));
        }
      }
    }
    // (dot - 128 · sum q, where K's sign bits were flipped) · qFac · kScale, four keys (one group)
    // at a time.
    const float* ks = a.cache.kScale + headRow;
    for (int g = 0; g < HG; g++) {
      const __m128i bias = _mm_set1_epi32(Vnni ? 128 * s.qSum[size_t(g0 + g)] : 0);
      const __m128 fac = _mm_set1_ps(s.qFac[size_t(g0 + g)]);
      for (int gl = 0; gl < NG; gl++) {
        const int64_t gi = gi0 + gl < st.n ? gi0 + gl : 0;
        const __m128i dots = _mm_sub_epi32(
            _mm_add_epi32(_mm256_castsi256_si128(acc[g][gl]), _mm256_extracti128_si256(acc[g][gl], 1)), bias);
        const __m128 sc = _mm_mul_ps(_mm_cvtepi32_ps(dots), _mm_mul_ps(fac, _mm_loadu_ps(ks + st.row[gi])));
        _mm_storeu_ps(p + (g0 + g) * kStepKeys + (gi0 + gl) * 4, sc);
      }
    }
  }

  // Head g's online-softmax step (stepProbabilities), its probabilities rounded to bytes by two
  // saturating packs.
  LK_I8_TILE static void softmax(DotScratch& s, int64_t g, const Step& st, const lk::AttnArgs& a) {
    const __m256 toByte = _mm256_set1_ps(stepProbabilities(s, g, st, a, kProbMax));
    const float* row = s.p.data() + g * kStepKeys;
    uint8_t* p8 = s.p8.data() + g * kStepKeys;
    for (int64_t j = 0; j < stepLanes(st); j += 16) {  // round half to even (the default mode), 0..kProbMax
      const __m256i b0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(row + j), toByte));
      const __m256i b1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(row + j + 8), toByte));
      // packus works within 128-bit lanes: [b0 0-3, b1 0-3 | b0 4-7, b1 4-7], put back in order.
      const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packus_epi32(b0, b1), 0xd8);
      const __m128i b8 = _mm_packus_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p8 + j), b8);
    }
  }
};

// Whether this CPU runs vpdpbusd on ymm registers in its VEX form (asked once).
inline bool hasAvxVnni() {
  static const bool yes = lk::cpuHasAvxVnni();
  return yes;
}

}  // namespace i8
}  // namespace LK_VARIANT

#endif
