// Decode attention's score and value kernels on float caches through fp32 multiply-adds (16-bit
// rows widened in registers): in-order kernels for any head_dim, pair kernels for head_dim a
// multiple of 2W (every real model), and heads of one vector or half of one
// (attention_short_rows.h). Included by kernels.cpp inside its variant namespace, after
// decode_attention_step.h.
#pragma once

// The in-order kernels below take any head_dim; the pair kernels after them need head_dim % 2W == 0
// (every real model) and are the fast path. All take a step's keys as a list of row offsets
// (rows[j] + off is key j's first element), in the order the step interleaves its blocks (see
// attentionPart).

// scores[g, j] = scale * q_g . K_j for GB query heads at once. Two keys per step: each q load
// serves both, and 2*GB independent FMA chains hide the FMA latency.
template <int DT, int GB>
inline void groupScores(const float* q, int64_t D, const void* kBase, const int64_t* rows, int64_t off, int64_t n,
                        float scale, float* scores) {
  const int64_t dv = D / W * W;
  int64_t j = 0;
  for (; j + 2 <= n; j += 2) {
    const int64_t k0 = rows[j] + off, k1 = rows[j + 1] + off;
    vf acc0[GB], acc1[GB];
    for (int g = 0; g < GB; g++) acc0[g] = acc1[g] = splat(0.0f);
    for (int64_t i = 0; i < dv; i += W) {
      const vf kv0 = loadw<DT>(kBase, k0 + i);
      const vf kv1 = loadw<DT>(kBase, k1 + i);
      for (int g = 0; g < GB; g++) {
        const vf qv = loadf(q + g * D + i);
        acc0[g] += qv * kv0;
        acc1[g] += qv * kv1;
      }
    }
    for (int g = 0; g < GB; g++) {
      float s0 = hsum(acc0[g]), s1 = hsum(acc1[g]);
      for (int64_t i = dv; i < D; i++) {
        s0 += q[g * D + i] * loadw1<DT>(kBase, k0 + i);
        s1 += q[g * D + i] * loadw1<DT>(kBase, k1 + i);
      }
      scores[g * kChunk + j] = s0 * scale;
      scores[g * kChunk + j + 1] = s1 * scale;
    }
  }
  for (; j < n; j++) {
    const int64_t kr = rows[j] + off;
    vf acc[GB];
    for (int g = 0; g < GB; g++) acc[g] = splat(0.0f);
    for (int64_t i = 0; i < dv; i += W) {
      const vf kv = loadw<DT>(kBase, kr + i);
      for (int g = 0; g < GB; g++) acc[g] += loadf(q + g * D + i) * kv;
    }
    for (int g = 0; g < GB; g++) {
      float s = hsum(acc[g]);
      for (int64_t i = dv; i < D; i++) s += q[g * D + i] * loadw1<DT>(kBase, kr + i);
      scores[g * kChunk + j] = s * scale;
    }
  }
}

// acc[g, :] += sum_j p[g, j] * V_j; even and odd keys go to separate registers so twice as many
// FMA chains run at once.
template <int DT, int GB>
inline void groupValues(float* acc, int64_t D, const void* vBase, const int64_t* rows, int64_t off, int64_t n,
                        const float* p) {
  const int64_t dv = D / W * W;
  for (int64_t i = 0; i < dv; i += W) {
    vf o[GB], e[GB];
    for (int g = 0; g < GB; g++) {
      o[g] = loadf(acc + g * D + i);
      e[g] = splat(0.0f);
    }
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
      const vf v0 = loadw<DT>(vBase, rows[j] + off + i);
      const vf v1 = loadw<DT>(vBase, rows[j + 1] + off + i);
      for (int g = 0; g < GB; g++) {
        o[g] += p[g * kChunk + j] * v0;
        e[g] += p[g * kChunk + j + 1] * v1;
      }
    }
    if (j < n) {
      const vf v0 = loadw<DT>(vBase, rows[j] + off + i);
      for (int g = 0; g < GB; g++) o[g] += p[g * kChunk + j] * v0;
    }
    for (int g = 0; g < GB; g++) storef(acc + g * D + i, o[g] + e[g]);
  }
  for (int64_t i = dv; i < D; i++)
    for (int64_t j = 0; j < n; j++) {
      const float vv = loadw1<DT>(vBase, rows[j] + off + i);
      for (int g = 0; g < GB; g++) acc[g * D + i] += p[g * kChunk + j] * vv;
    }
}

// Accumulators the values kernel keeps in registers: half the register file, leaving room for
// the V vectors and the broadcast probabilities.
constexpr int kValueAccs = W == 16 ? 16 : 8;

// The values micro-kernel: GB heads x NP column pairs of the accumulator held in registers over
// all n keys. Every accumulator gets one FMA per key, so there are 2 * GB * NP independent chains
// whatever GB is; each probability is broadcast once per NP pairs of V.
template <int DT, int GB, int NP>
inline void pairValuesCols(float* acc, int64_t D, int64_t i, const void* vBase, const int64_t* rows, int64_t off,
                           int64_t n, const float* p) {
  vf o[GB][2 * NP];
  for (int g = 0; g < GB; g++)
    for (int c = 0; c < 2 * NP; c++) o[g][c] = loadf(acc + g * D + i + c * W);
  for (int64_t j = 0; j < n; j++) {
    vf v[2 * NP];
    const int64_t row = rows[j] + off + i;
    for (int c = 0; c < NP; c++) loadPair<DT>(vBase, row + 2 * c * W, v[2 * c], v[2 * c + 1]);
    for (int g = 0; g < GB; g++) {
      const vf pg = splat(p[g * kChunk + j]);
      for (int c = 0; c < 2 * NP; c++) o[g][c] += pg * v[c];
    }
  }
  for (int g = 0; g < GB; g++)
    for (int c = 0; c < 2 * NP; c++) storef(acc + g * D + i + c * W, o[g][c]);
}

template <int DT, int GB>
inline void pairValues(float* acc, int64_t D, const void* vBase, const int64_t* rows, int64_t off, int64_t n,
                       const float* p) {
  constexpr int NP = kValueAccs / GB / 2 > 0 ? kValueAccs / GB / 2 : 1;
  int64_t i = 0;
  for (; i + 2 * NP * W <= D; i += 2 * NP * W) pairValuesCols<DT, GB, NP>(acc, D, i, vBase, rows, off, n, p);
  for (; i < D; i += 2 * W) pairValuesCols<DT, GB, 1>(acc, D, i, vBase, rows, off, n, p);
}

#if defined(__AVX512F__)
// The sums of 16 vectors as one vector, by a transposing tree of shuffles and adds (45 ops for 16
// sums instead of 16 separate horizontal sums): lane 4L+m holds the sum of v[4m+L].
inline vf reduceW(const vf* v) {
  __m512 s1[8];
  for (int p = 0; p < 8; p++) {
    const __m512 a = (__m512)v[2 * p], b = (__m512)v[2 * p + 1];
    s1[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xee));
  }
  __m512 s2[4];
  for (int p = 0; p < 4; p++) {
    const __m512 a = s1[2 * p], b = s1[2 * p + 1];
    s2[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xdd));
  }
  const __m512 t01 = _mm512_add_ps(_mm512_unpacklo_ps(s2[0], s2[1]), _mm512_unpackhi_ps(s2[0], s2[1]));
  const __m512 t23 = _mm512_add_ps(_mm512_unpacklo_ps(s2[2], s2[3]), _mm512_unpackhi_ps(s2[2], s2[3]));
  const __m512d a = _mm512_castps_pd(t01), b = _mm512_castps_pd(t23);
  return (vf)_mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
}
// Which accumulator feeds lane l of reduceW's result.
constexpr int tileAcc(int l) { return 4 * (l % 4) + l / 4; }
#elif defined(__AVX2__)
// The sums of 8 vectors as one vector, lane l holding the sum of v[l]: two rounds of horizontal
// adds leave each 128-bit half with four partial sums (low half from elements 0-3, high from
// 4-7), and one cross-lane permute plus add combines the halves (9 ops for 8 sums, where eight
// separate horizontal sums take about 40).
inline vf reduceW(const vf* v) {
  const __m256 h01 = _mm256_hadd_ps((__m256)v[0], (__m256)v[1]);
  const __m256 h23 = _mm256_hadd_ps((__m256)v[2], (__m256)v[3]);
  const __m256 h45 = _mm256_hadd_ps((__m256)v[4], (__m256)v[5]);
  const __m256 h67 = _mm256_hadd_ps((__m256)v[6], (__m256)v[7]);
  const __m256 a = _mm256_hadd_ps(h01, h23);  // [lo sums of v0..v3 | hi sums of v0..v3]
  const __m256 b = _mm256_hadd_ps(h45, h67);  // [lo sums of v4..v7 | hi sums of v4..v7]
  // [a.lo | b.lo] + [a.hi | b.hi]: the first from a blend, the second from one lane swap.
  return (vf)_mm256_add_ps(_mm256_blend_ps(a, b, 0xf0), _mm256_permute2f128_ps(a, b, 0x21));
}
constexpr int tileAcc(int l) { return l; }
#else
inline vf reduceW(const vf* v) {
  vf r;
  for (int l = 0; l < W; l++) r[l] = hsum(v[l]);
  return r;
}
constexpr int tileAcc(int l) { return l; }
#endif

// The scores micro-kernel: GB query heads x KB keys (GB * KB = W) as one small matrix product,
// W accumulators over head_dim, each K pair loaded (and widened) once for all GB heads, then one
// transposing reduction gives all W scores in a vector.
template <int DT, int GB, int KB>
inline void pairScoresTile(const float* q, int64_t D, const void* kBase, const int64_t* rows, int64_t off, float scale,
                           float* scores) {
  static_assert(GB * KB == W, "one tile fills one vector of scores");
  vf acc[W];
  for (int i = 0; i < W; i++) acc[i] = splat(0.0f);
  for (int64_t i = 0; i < D; i += 2 * W) {
    for (int j = 0; j < KB; j++) {
      vf ka, kb;
      loadPair<DT>(kBase, rows[j] + off + i, ka, kb);
      // Score (g, j) goes to lane g*KB + j of the reduced vector.
      // Two separate updates, so each is one FMA (a*b + c*d + acc would add a multiply).
      for (int g = 0; g < GB; g++) {
        acc[tileAcc(g * KB + j)] += loadf(q + g * D + i) * ka;
        acc[tileAcc(g * KB + j)] += loadf(q + g * D + i + W) * kb;
      }
    }
  }
  alignas(64) float r[W];
  storef(r, reduceW(acc) * scale);
  if constexpr (GB == 1) {
    storef(scores, loadf(r));
  } else {
    for (int g = 0; g < GB; g++)
      for (int j = 0; j < KB; j++) scores[g * kChunk + j] = r[g * KB + j];
  }
}

// Heads [0, GB) over keys [0, n): whole tiles, then the tail keys one at a time.
template <int DT, int GB>
inline void pairScores(const float* q, int64_t D, const void* kBase, const int64_t* rows, int64_t off, int64_t n,
                       float scale, float* scores) {
  constexpr int KB = W / GB;
  int64_t j = 0;
  for (; j + KB <= n; j += KB) pairScoresTile<DT, GB, KB>(q, D, kBase, rows + j, off, scale, scores + j);
  for (; j < n; j++) {
    for (int g = 0; g < GB; g++) {
      vf acc = splat(0.0f);
      for (int64_t i = 0; i < D; i += 2 * W) {
        vf ka, kb;
        loadPair<DT>(kBase, rows[j] + off + i, ka, kb);
        acc += loadf(q + g * D + i) * ka;
        acc += loadf(q + g * D + i + W) * kb;
      }
      scores[g * kChunk + j] = hsum(acc) * scale;
    }
  }
}

#include "attention_short_rows.h"

// All G query heads of one KV head over n keys. `pairs`: head_dim is a multiple of 2W, and q is in
// pair order; then heads go in groups of 2 (tiles of 2 heads x W/2 keys: q for both heads stays in
// registers, where 4-head tiles reload it from cache for every key pair and measured slower even
// though they widen each K row once per 4 heads instead of 2), else 4, 2 and 1.
template <int DT>
inline void scoresAll(bool pairs, const float* q, int64_t G, int64_t D, const void* kBase, const int64_t* rows,
                      int64_t off, int64_t n, float scale, float* scores) {
  if (shortRows(D)) return shortScores<DT>(q, G, D, kBase, rows, off, n, scale, scores);
  int64_t g = 0;
  if (pairs) {
    for (; g + 2 <= G; g += 2) pairScores<DT, 2>(q + g * D, D, kBase, rows, off, n, scale, scores + g * kChunk);
    for (; g < G; g++) pairScores<DT, 1>(q + g * D, D, kBase, rows, off, n, scale, scores + g * kChunk);
    return;
  }
  for (; g + 4 <= G; g += 4) groupScores<DT, 4>(q + g * D, D, kBase, rows, off, n, scale, scores + g * kChunk);
  for (; g + 2 <= G; g += 2) groupScores<DT, 2>(q + g * D, D, kBase, rows, off, n, scale, scores + g * kChunk);
  for (; g < G; g++) groupScores<DT, 1>(q + g * D, D, kBase, rows, off, n, scale, scores + g * kChunk);
}

template <int DT>
inline void valuesAll(bool pairs, float* acc, int64_t G, int64_t D, const void* vBase, const int64_t* rows,
                      int64_t off, int64_t n, const float* p) {
#if defined(__AVX512F__)
  if (D == 8) return shortValues8<DT>(acc, G, vBase, rows, off, n, p);  // rows of W take groupValues' vectors
#endif
  int64_t g = 0;
  if (pairs) {
    for (; g + 4 <= G; g += 4) pairValues<DT, 4>(acc + g * D, D, vBase, rows, off, n, p + g * kChunk);
    for (; g + 2 <= G; g += 2) pairValues<DT, 2>(acc + g * D, D, vBase, rows, off, n, p + g * kChunk);
    for (; g < G; g++) pairValues<DT, 1>(acc + g * D, D, vBase, rows, off, n, p + g * kChunk);
    return;
  }
  for (; g + 4 <= G; g += 4) groupValues<DT, 4>(acc + g * D, D, vBase, rows, off, n, p + g * kChunk);
  for (; g + 2 <= G; g += 2) groupValues<DT, 2>(acc + g * D, D, vBase, rows, off, n, p + g * kChunk);
  for (; g < G; g++) groupValues<DT, 1>(acc + g * D, D, vBase, rows, off, n, p + g * kChunk);
}
