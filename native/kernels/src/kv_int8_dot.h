// int8 KV attention through byte products, the part its two vector widths share (included by
// kv_int8.h): 512-bit vectors (kv_int8_zmm.h) and 256-bit ones (kv_int8_ymm.h), each through vpdpbusd
// where the CPU has VNNI, else vpmaddubsw and vpmaddwd. Here: the task's scratch, the step's V
// scales, head tiles and the step loop with its prefetches and read-ahead; each width supplies its
// kernels as a struct K with quantizeQueries, scoreTile<HG>, values<HG>, softmax and kMaxHeads (the
// widest head tile its registers hold). How the kernels work: kv_int8_zmm.h.
#pragma once

#if defined(__AVX2__)

// A kernel kept a function of its own, out of the step loop. The 512-bit kernels all are: inlined
// into the loop their accumulators were spilled to the stack (a call on keys in L2, AVX-512 VNNI,
// took 53-56 against 38-40 us). The 256-bit score and value tiles are inlined: out of line, the
// AVX-VNNI call took 105-108 against 77-78 us.
#define LK_I8_TILE __attribute__((noinline))

namespace LK_VARIANT {
namespace i8 {

struct DotScratch {
  lk::LineVector<int8_t> q8;        // [H, dp] queries as int8, zero past D
  lk::LineVector<int8_t> qArr;      // [H, ceil(D / 16), 64] per 64 bytes of a K group: the query's 4 quads, each repeated 4x
  std::vector<int32_t> qSum;     // [H] sum of each head's int8 query
  std::vector<float> qFac;       // [H] its scale times the softmax scale
  lk::LineVector<float> p;          // [H, kStepKeys] scores, then probabilities
  lk::LineVector<uint8_t> p8;       // [H, kStepKeys] probabilities as 8 bits (V scale folded in)
  lk::LineVector<float> acc;        // [H, dc] numerators (dc: head_dim rounded up to 16)
  std::vector<float> m, l, corr, unit;  // [H] running max and sum; per step: rescale, 8-bit unit
  alignas(64) float vScaleRow[kStepKeys];  // the step's V scales of one KV head, 0 outside the range
};

inline DotScratch& dotScratch(int64_t H, int64_t dp, int64_t dc) {
  thread_local DotScratch s;
  auto grow = [](auto& v, int64_t n) {
    if (int64_t(v.size()) < n) v.resize(size_t(n));
  };
  grow(s.q8, H * dp);
  grow(s.qArr, H * dp * 4);
  grow(s.qSum, H);
  grow(s.qFac, H);
  grow(s.p, H * kStepKeys);
  grow(s.p8, H * kStepKeys);
  grow(s.acc, H * dc);
  for (auto* v : {&s.m, &s.l, &s.corr, &s.unit}) grow(*v, H);
  return s;
}

// Query head g of the task rounded to int8 into s.q8 (zeros from D to dp), with its sum and its
// scale times the softmax scale; returns its row. Each instruction set then arranges the row for
// the K layout.
inline const int8_t* quantizeQueryHead(DotScratch& s, const float* q, int64_t g, int64_t D, int64_t dp, float scale) {
  int8_t* q8 = s.q8.data() + g * dp;
  const float* x = q + g * D;
  // quantizeRow's rounding in vectors: the same product x * (127 / absmax), rounded half to even by
  // the conversion (the default mode, as nearbyint), so the codes are quantizeRow's. A task rounds
  // its query heads once; at 512 keys a task the scalar loop took a seventh of the kernel's time.
  vf am = splat(0.0f);
  int64_t i = 0;
  for (; i + W <= D; i += W) am = vmax(am, (vf)((vu)loadf(x + i) & 0x7fffffffu));
  float amax = hmax(am);
  for (int64_t j = i; j < D; j++) amax = std::max(amax, std::fabs(x[j]));
  const float inv = amax > 0 ? 127.0f / amax : 0.0f;
  int32_t sum = 0;
  i = 0;
#if defined(__AVX512F__)
  __m512i acc = _mm512_setzero_si512();
  for (; i + 16 <= D; i += 16) {
    const __m512i r = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), _mm512_set1_ps(inv)));
    const __m512i c = _mm512_max_epi32(_mm512_set1_epi32(-127), _mm512_min_epi32(r, _mm512_set1_epi32(127)));
    acc = _mm512_add_epi32(acc, c);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q8 + i), _mm512_cvtepi32_epi8(c));
  }
  sum = _mm512_reduce_add_epi32(acc);
#else
  __m256i acc = _mm256_setzero_si256();
  for (; i + 8 <= D; i += 8) {
    const __m256i r = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(inv)));
    const __m256i c = _mm256_max_epi32(_mm256_set1_epi32(-127), _mm256_min_epi32(r, _mm256_set1_epi32(127)));
    acc = _mm256_add_epi32(acc, c);
    alignas(32) int32_t w[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(w), c);
    for (int k = 0; k < 8; k++) q8[i + k] = int8_t(w[k]);
  }
  alignas(32) int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
  for (int k = 0; k < 8; k++) sum += lanes[k];
#endif
  for (; i < D; i++) {
    q8[i] = int8_t(std::min(127.0f, std::max(-127.0f, std::nearbyint(x[i] * inv))));
    sum += q8[i];
  }
  std::fill(q8 + D, q8 + dp, int8_t(0));
  s.qSum[g] = sum;
  s.qFac[g] = (amax / 127.0f) * scale;
  return q8;
}

// The step's lanes the softmax takes: its groups' keys, in whole 16s (the byte rounding's width).
// Lanes past them are never read (the values pass takes the step's groups alone), so a short step
// (a short context, the last of a range) costs its keys, not a whole step of kStepKeys.
inline int64_t stepLanes(const Step& st) { return (st.n * 4 + 15) / 16 * 16; }

// Head g's online-softmax step over the step's scores (soft-capped first where the model caps,
// Gemma 2: cap * tanh(score / cap); keys outside a group's range already -inf, lanes past the
// step's groups read as -inf), up to the rounding to bytes each instruction set does: the rescale
// factor, running max and sum, and the probabilities times their V scales in place of the scores,
// whose largest becomes byte value probMax (s.unit[g]: one byte's worth); returns the factor to
// the bytes. Two passes over the step's scores: their max; the exponentials, summed and scaled
// (their max kept).
inline float stepProbabilities(DotScratch& s, int64_t g, const Step& st, const lk::AttnArgs& a, float probMax) {
  float* row = s.p.data() + g * kStepKeys;
  const int64_t lanes = stepLanes(st);
  const int64_t n = st.n * 4;  // lanes from n on read as -inf
  if (a.softcap > 0) softcapScores(row, n, a.softcap);
  vf mv = splat(-INFINITY);
  for (int64_t j = 0; j < lanes; j += W) mv = vmax(mv, scoresVector(row, j, n));
  const float mNew = std::max(s.m[g], hmax(mv));
  s.corr[g] = std::exp(s.m[g] - mNew);  // 0 on the first step (m = -inf)
  vf lv = splat(0.0f), wm = splat(0.0f);
  for (int64_t j = 0; j < lanes; j += W) {  // exp(-inf) = 0
    const vf e = vexpNonPositive(scoresVector(row, j, n) - mNew);
    lv += e;
    const vf w = e * loadf(s.vScaleRow + j);
    wm = vmax(wm, w);
    storef(row + j, w);
  }
  s.l[g] = s.l[g] * s.corr[g] + hsum(lv);
  s.m[g] = mNew;
  const float wmax = hmax(wm);
  s.unit[g] = wmax / probMax;
  return wmax > 0 ? probMax / wmax : 0.0f;
}

// A group's four 8-bit probabilities read as one word.
typedef int32_t ByteWord __attribute__((may_alias));

// The step's V scales of one KV head (vs: vScale + the head's row offset) key by key, 0 outside
// the range: a lane outside has probability 0, and its scale may be anything.
inline void stepVScales(DotScratch& s, const Step& st, const float* vs) {
  for (int64_t gi = 0; gi < st.n; gi++) {
    std::memcpy(s.vScaleRow + gi * 4, vs + st.row[gi], 4 * sizeof(float));
    for (int j = 0; j < 4; j++)
      if (j < st.lo[gi] || j >= st.hi[gi]) s.vScaleRow[gi * 4 + j] = 0.0f;
  }
  std::fill(s.vScaleRow + st.n * 4, s.vScaleRow + kStepKeys, 0.0f);
}

// Heads [0, n) in tiles of Max (4 or 2), 2 and 1, each tile's callable templated on its size.
template <int Max, typename F>
inline void dotHeadTiles(int64_t n, F f) {
  int64_t g = 0;
  if constexpr (Max >= 4)
    for (; g + 4 <= n; g += 4) f(std::integral_constant<int, 4>{}, g);
  for (; g + 2 <= n; g += 2) f(std::integral_constant<int, 2>{}, g);
  for (; g < n; g++) f(std::integral_constant<int, 1>{}, g);
}

// LoadsOnly: the task's K and V groups and their scales read in the kernels' order, with the same
// steps, read-ahead and prefetches, nothing computed; returns the sum of their 64-bit words (out
// and lse are not written): the benchmarks' limit of the read pattern (attentionReadPattern).
template <class K, bool LoadsOnly = false>
inline uint64_t attentionIntDot(const lk::AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1,
                                float* out, float* lse) {
  const lk::KvArgs& c = a.cache;
  const int64_t D = c.headDim, bs = c.blockSize, nKv = c.nKvHeads, nKvTask = h1 - h0;
  const int64_t dp = (D + 63) / 64 * 64, dc = (D + 15) / 16 * 16;
  const int64_t G = a.nHeads / nKv, H = nKvTask * G;
  DotScratch& s = dotScratch(H, dp, dc);
  uint64_t loaded = 0;
  if constexpr (!LoadsOnly) K::quantizeQueries(s, a.q + (t * a.nHeads + h0 * G) * D, H, D, dp, a.scale);
  std::fill(s.acc.begin(), s.acc.begin() + H * dc, 0.0f);
  std::fill(s.m.begin(), s.m.begin() + H, -INFINITY);
  std::fill(s.l.begin(), s.l.begin() + H, 0.0f);
  const int32_t* table = a.blockTables + int64_t(a.qSeq[t]) * a.maxBlocksPerSeq;
  const int8_t* v8 = static_cast<const int8_t*>(c.v);
  const int8_t* k8 = static_cast<const int8_t*>(c.k);
  // Each step: every KV head's scores, then every head's softmax, then every head's values, so K
  // (then V) is read block by block across the heads: a block's rows of all the task's heads are
  // one contiguous region, and with the step's groups interleaved across its blocks (gather) the
  // reads are several sequential streams the hardware prefetcher follows at once.
  Step steps[3];
  int64_t gathered = 1;  // the last step gathered
  int64_t p = gather(a, table, p0, p1, steps[0]);
  p = gather(a, table, p, p1, steps[1]);
  // The kernels' reads asked for kReadAheadBytes ahead, in their order (each head's K groups, then
  // each head's V groups, step by step), paced from inside the tiles' loops.
  auto ra = makeReadAhead(
      kReadAheadBytes, nKvTask, 4 * D,
      ReadLayout{reinterpret_cast<const char*>(k8), reinterpret_cast<const char*>(v8), h0 * bs, bs, D},
      [&](int64_t st) { return st <= gathered ? steps[st % 3].n : int64_t(0); },
      [&](int64_t st) -> const int64_t* { return steps[st % 3].row; });
  auto pace = [&](int64_t bytes) { ra.consumed(bytes); };
  auto noPace = [](int64_t) {};
  for (int64_t stepNo = 0; steps[stepNo % 3].n > 0; stepNo++) {
    const Step& st = steps[stepNo % 3];
    Step& far = steps[(stepNo + 2) % 3];
    p = gather(a, table, p, p1, far);
    gathered = stepNo + 2;
    // Each (block, KV head) is a region of its own (2 KiB of K and of V at head_dim 128, blocks of
    // 16): touching the first lines of every head's region two steps ahead gets the page walks and
    // the hardware prefetcher's training done before the data is needed, and each block's K and V
    // scales (one line per head) are asked for then too. Each helped beside the read-ahead (a
    // call at context 16,384 in 8.2 ms with both, 8.9-9.0 with one, 9.4 with neither).
    for (int64_t gi = 0; gi < far.n; gi++)
      if (gi == 0 || far.blockStart[gi]) {
        for (int64_t kh = 0; kh < nKvTask; kh++) {
          const int64_t at = (far.row[gi] + (h0 + kh) * bs) * D;
          __builtin_prefetch(k8 + at, 0, 3);
          __builtin_prefetch(k8 + at + 64, 0, 3);
          __builtin_prefetch(v8 + at, 0, 3);
          __builtin_prefetch(v8 + at + 64, 0, 3);
        }
        const char* ks = reinterpret_cast<const char*>(c.kScale + far.row[gi] + h0 * bs);
        const char* vs = reinterpret_cast<const char*>(c.vScale + far.row[gi] + h0 * bs);
        for (int64_t b = 0; b < nKvTask * bs * int64_t(sizeof(float)); b += 64) {
          __builtin_prefetch(ks + b, 0, 3);
          __builtin_prefetch(vs + b, 0, 3);
        }
      }
    if constexpr (LoadsOnly) {
      for (int phase = 0; phase < 2; phase++)
        for (int64_t kh = 0; kh < nKvTask; kh++) {
          const int64_t headRow = (h0 + kh) * bs;
          const int8_t* base = phase ? v8 : k8;
          const float* scales = phase ? c.vScale : c.kScale;
          for (int64_t gi = 0; gi < st.n; gi++) {
            pace(4 * D);
            loaded += lk::sumWords(base + (st.row[gi] + headRow) * D, 4 * D);
            loaded += lk::sumWords(scales + st.row[gi] + headRow, 4 * sizeof(float));
          }
        }
      continue;
    }
    for (int64_t kh = 0; kh < nKvTask; kh++) {
      const int64_t headRow = (h0 + kh) * bs, g0 = kh * G;
      // The read-ahead is paced by one tile of heads only: every tile reads the same lines.
      dotHeadTiles<K::kMaxHeads>(G, [&](auto hg, int64_t g) {
        constexpr int HG = decltype(hg)::value;
        for (int64_t gi = 0; gi < st.n; gi += 4) {
          if (g == 0) K::template scoreTile<HG>(s, a, st, gi, g0 + g, headRow, s.p.data(), pace);
          else K::template scoreTile<HG>(s, a, st, gi, g0 + g, headRow, s.p.data(), noPace);
        }
      });
    }
    for (int64_t kh = 0; kh < nKvTask; kh++) {
      const int64_t headRow = (h0 + kh) * bs, g0 = kh * G;
      // Lanes of the range's partial first and last groups.
      for (int64_t gi = 0; gi < st.n; gi++) {
        if (st.lo[gi] == 0 && st.hi[gi] == 4) continue;
        for (int64_t g = g0; g < g0 + G; g++)
          for (int j = 0; j < 4; j++)
            if (j < st.lo[gi] || j >= st.hi[gi]) s.p[g * kStepKeys + gi * 4 + j] = -INFINITY;
      }
      stepVScales(s, st, c.vScale + headRow);
      for (int64_t g = g0; g < g0 + G; g++) K::softmax(s, g, st, a);
    }
    for (int64_t kh = 0; kh < nKvTask; kh++) {
      const int64_t headRow = (h0 + kh) * bs, g0 = kh * G;
      const int8_t* vBase = v8 + headRow * D;
      dotHeadTiles<K::kMaxHeads>(G, [&](auto hg, int64_t g) {
        constexpr int HG = decltype(hg)::value;
        if (g == 0) K::template values<HG>(s, st, vBase, D, dc, g0 + g, pace);
        else K::template values<HG>(s, st, vBase, D, dc, g0 + g, noPace);
      });
    }
  }
  if constexpr (LoadsOnly) return loaded;
  for (int64_t g = 0; g < H; g++) {
    const float l = s.l[g];
    const float inv = l > 0 ? 1.0f / l : 0.0f;
    for (int64_t d = 0; d < D; d++) out[g * D + d] = s.acc[g * dc + d] * inv;
    if (lse) lse[g] = l > 0 ? s.m[g] + std::log(l) : -INFINITY;
  }
  return 0;
}

}  // namespace i8
}  // namespace LK_VARIANT

#endif
