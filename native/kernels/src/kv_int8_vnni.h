// int8 KV attention through AVX-512 VNNI integer dot products (vpdpbusd), for the AVX-512
// variants (included by kv_int8.h); the functions carry target("avx512vnni") and are called only
// where the CPU reports it (kv_int8.h checks once), so the variant itself still runs without it.
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
// the probabilities to 8 bits (1/510 of a step's largest, absolute); the softmax's denominator
// is summed from the unrounded probabilities.
#pragma once

#if defined(__AVX512F__) && defined(__AVX512BW__)
#define LK_I8_VNNI 1
#define LK_VNNI __attribute__((target("avx512vnni")))

namespace LK_VARIANT {
namespace i8 {

struct VnniScratch {
  std::vector<int8_t> q8;        // [H, dp] queries as int8, zero past D
  std::vector<int8_t> qArr;      // [H, ceil(D / 16), 64] per 64 bytes of a K group: the query's 4 quads, each repeated 4x
  std::vector<int32_t> qSum;     // [H] sum of each head's int8 query
  std::vector<float> qFac;       // [H] its scale times the softmax scale
  std::vector<float> p;          // [H, kStepKeys] scores, then probabilities
  std::vector<uint8_t> p8;       // [H, kStepKeys] probabilities as 8 bits (V scale folded in)
  std::vector<float> acc;        // [H, nc * 16] numerators
  std::vector<float> m, l, corr, unit;  // [H] running max and sum; per step: rescale, 8-bit unit
  alignas(64) float vScaleRow[kStepKeys];  // the step's V scales of one KV head, 0 outside the range
};

inline VnniScratch& vnniScratch(int64_t H, int64_t dp, int64_t dc) {
  thread_local VnniScratch s;
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

// Lanes 4i..4i+3 of the result: the four 32-bit lanes of v[i], each summed over v[i]'s four
// 128-bit lanes (a group's four keys, from their partial sums over quads 4c + lane).
__attribute__((always_inline)) inline __m512i reduce4(const __m512i* v) {
  const __m512i y01 = _mm512_add_epi32(_mm512_shuffle_i32x4(v[0], v[1], 0x44), _mm512_shuffle_i32x4(v[0], v[1], 0xee));
  const __m512i y23 = _mm512_add_epi32(_mm512_shuffle_i32x4(v[2], v[3], 0x44), _mm512_shuffle_i32x4(v[2], v[3], 0xee));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(y01, y23, 0x88), _mm512_shuffle_i32x4(y01, y23, 0xdd));
}

// acc += the 4-byte dot products of u8 lanes of a with s8 lanes of b. Inline assembly: GCC copies
// the accumulator around each intrinsic (the instruction overwrites it), which tripled the
// instructions of the tiles below.
inline void dpbusd(__m512i& acc, __m512i a, __m512i b) { asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b)); }

// A group's four 8-bit probabilities read as one word.
typedef int32_t ByteWord __attribute__((may_alias));

// The kScales of a tile's 4 groups (a group past the step's last reads the first's).
inline __m512 tileKScale(const float* ks, const Step& st, int64_t gi0) {
  auto grp = [&](int gl) { return _mm_loadu_ps(ks + st.row[gi0 + gl < st.n ? gi0 + gl : gi0]); };
  __m512 r = _mm512_castps128_ps512(grp(0));
  r = _mm512_insertf32x4(r, grp(1), 1);
  r = _mm512_insertf32x4(r, grp(2), 2);
  return _mm512_insertf32x4(r, grp(3), 3);
}

// Scores of HG heads x the 4 groups from gi0 of one KV head: p[g * kStepKeys + 4 * group + lane].
// Groups past st.n give scores nobody reads.
// pace(bytes) is told before each 64-byte column of the 4 groups is read (the read-ahead).
template <int HG, typename Pace>
LK_VNNI inline void vnniScoreTile(const VnniScratch& s, const lk::AttnArgs& a, const Step& st, int64_t gi0,
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
      const __m512i ku = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, rows[gl] + c * 64), flip);
#pragma GCC unroll 4
      for (int g = 0; g < HG; g++) dpbusd(acc[g][gl], ku, qv[g]);
    }
  }
  // (dot - 128 · sum q) · qFac · kScale, key by key.
  const __m512 ks = tileKScale(a.cache.kScale + headRow, st, gi0);
#pragma GCC unroll 4
  for (int g = 0; g < HG; g++) {
    const __m512i dots = _mm512_sub_epi32(reduce4(acc[g]), _mm512_set1_epi32(128 * s.qSum[size_t(g0 + g)]));
    const __m512 sc = _mm512_mul_ps(_mm512_cvtepi32_ps(dots), _mm512_mul_ps(_mm512_set1_ps(s.qFac[size_t(g0 + g)]), ks));
    _mm512_storeu_ps(p + (g0 + g) * kStepKeys + gi0 * 4, sc);
  }
}

// acc[g] (nc vectors of 16) += this step's V groups weighted by the heads' 8-bit probabilities, HG
// heads x NC column vectors held in registers over the step; then folded in fp32: acc · corr +
// sum · unit. pace(bytes) is told before each group's NC * 64 bytes are read.
template <int HG, int NC, typename Pace>
LK_VNNI inline void vnniValueCols(VnniScratch& s, const Step& st, const int8_t* vBase, int64_t D, int64_t dc,
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
      for (int c = 0; c < NC; c++) dpbusd(sum[g][c], w, v[c]);
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

template <int HG, typename Pace>
LK_VNNI inline void vnniValues(VnniScratch& s, const Step& st, const int8_t* vBase, int64_t D, int64_t dc, int64_t g0,
                               Pace& pace) {
  const int64_t nc = dc / 16;
  int64_t c = 0;
  for (; c + 4 <= nc; c += 4) vnniValueCols<HG, 4>(s, st, vBase, D, dc, g0, c, pace);
  for (; c < nc; c++) vnniValueCols<HG, 1>(s, st, vBase, D, dc, g0, c, pace);
}

// e^x for x <= 0 (-inf included): 2^n · 2^f, n = round(x · log2 e), |f| <= 1/2, 2^f by its Taylor
// polynomial to degree 5 (relative error under 3e-6, far below the 8-bit rounding of the
// probabilities that follows); x is clamped at -127 first, whose power of two scalef flushes to 0.
LK_VNNI inline __m512 expNonPositive(__m512 x) {
  const __m512 t = _mm512_mul_ps(_mm512_max_ps(x, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(1.44269504f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 p = _mm512_set1_ps(1.33335581e-3f);  // ln2^5 / 5!
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.61812911e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.55041087e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.40226507e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.93147181e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// Head g's online-softmax step over n scores (invalid lanes already -inf): rescale factor, running
// max and sum, and its probabilities times their V scales as 8 bits against the largest. Three
// passes over the step's scores: their max; the exponentials, summed and scaled (their max kept);
// the rounding to bytes.
LK_VNNI inline void vnniSoftmax(VnniScratch& s, int64_t g, const Step& st, const lk::AttnArgs& a) {
  float* row = s.p.data() + g * kStepKeys;
  const int64_t n = st.n * 4;
  if (a.softcap > 0) {  // Gemma 2: scores become cap * tanh(score / cap) before the softmax
    const float inv = 1.0f / a.softcap;
    for (int64_t j = 0; j < n; j++)
      if (row[j] != -INFINITY) row[j] = a.softcap * std::tanh(row[j] * inv);
  }
  for (int64_t j = n; j < kStepKeys; j++) row[j] = -INFINITY;
  __m512 mv = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < kStepKeys; j += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(row + j));
  const float mNew = std::max(s.m[g], _mm512_reduce_max_ps(mv));
  s.corr[g] = std::exp(s.m[g] - mNew);  // 0 on the first step (m = -inf)
  const __m512 mB = _mm512_set1_ps(mNew);
  __m512 lv = _mm512_setzero_ps(), wm = _mm512_setzero_ps();
  for (int64_t j = 0; j < kStepKeys; j += 16) {
    const __m512 e = expNonPositive(_mm512_sub_ps(_mm512_loadu_ps(row + j), mB));
    lv = _mm512_add_ps(lv, e);
    const __m512 w = _mm512_mul_ps(e, _mm512_loadu_ps(s.vScaleRow + j));
    wm = _mm512_max_ps(wm, w);
    _mm512_storeu_ps(row + j, w);
  }
  s.l[g] = s.l[g] * s.corr[g] + _mm512_reduce_add_ps(lv);
  s.m[g] = mNew;
  const float wmax = _mm512_reduce_max_ps(wm);
  const __m512 toByte = _mm512_set1_ps(wmax > 0 ? 255.0f / wmax : 0.0f);
  s.unit[g] = wmax / 255.0f;
  uint8_t* p8 = s.p8.data() + g * kStepKeys;
  for (int64_t j = 0; j < kStepKeys; j += 16) {  // round half to even (the default mode), 0..255
    const __m512i b = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(row + j), toByte));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p8 + j), _mm512_cvtusepi32_epi8(b));
  }
}

// The step's V scales of one KV head (vs: vScale + the head's row offset) key by key, 0 outside
// the range: a lane outside has probability 0, and its scale may be anything.
inline void stepVScales(VnniScratch& s, const Step& st, const float* vs) {
  for (int64_t gi = 0; gi < st.n; gi++) {
    std::memcpy(s.vScaleRow + gi * 4, vs + st.row[gi], 4 * sizeof(float));
    for (int j = 0; j < 4; j++)
      if (j < st.lo[gi] || j >= st.hi[gi]) s.vScaleRow[gi * 4 + j] = 0.0f;
  }
  std::fill(s.vScaleRow + st.n * 4, s.vScaleRow + kStepKeys, 0.0f);
}

// Heads [0, n) in tiles of 4, 2 and 1, each tile's callable templated on its size.
template <typename F>
inline void vnniHeadTiles(int64_t n, F f) {
  int64_t g = 0;
  for (; g + 4 <= n; g += 4) f(std::integral_constant<int, 4>{}, g);
  for (; g + 2 <= n; g += 2) f(std::integral_constant<int, 2>{}, g);
  for (; g < n; g++) f(std::integral_constant<int, 1>{}, g);
}

// Each query head of the task rounded to int8, with its sum and scale, and arranged for the K
// layout: per 64 bytes c of a group (elements 16c..16c+15 of four keys), quad 4c + i repeated
// over 128-bit lane i.
LK_VNNI inline void quantizeQueries(VnniScratch& s, const float* q, int64_t H, int64_t D, int64_t dp, float scale) {
  const int64_t nc = (4 * D + 63) / 64;
  const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  for (int64_t g = 0; g < H; g++) {
    int8_t* q8 = s.q8.data() + g * dp;
    const float qs = quantizeRow(q8, [](int64_t i) { return i; }, q + g * D, D);
    std::fill(q8 + D, q8 + dp, int8_t(0));
    int32_t sum = 0;
    for (int64_t i = 0; i < D; i++) sum += q8[i];
    s.qSum[g] = sum;
    s.qFac[g] = qs * scale;
    for (int64_t c = 0; c < nc; c++) {
      const __m512i quads = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q8 + 16 * c)));
      _mm512_storeu_si512(s.qArr.data() + (g * nc + c) * 64, _mm512_permutexvar_epi32(spread, quads));
    }
  }
}

// How far ahead of the kernels the task's K and V lines are asked for: 256 lines (16 KiB, one KV
// head's K or V of a 128-key step at head_dim 128). Swept on an AVX-512 EPYC (2 threads, batch 8,
// 8 KV heads, context 16,384, distances alternating call by call, best of 12): 64 lines 8.9 ms a
// call, 128 8.4, 256 8.2, against 12.0 with none; in other runs 512 and 1,024 were level with 256
// or slower, 2,048 slower; prefetcht1/t2 instead of t0 slower, nta level (BENCHMARKS.md).
constexpr int64_t kReadAheadBytes = 256 * 64;

LK_VNNI inline void attentionVnni(const lk::AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1,
                                  float* out, float* lse) {
  const lk::KvArgs& c = a.cache;
  const int64_t D = c.headDim, bs = c.blockSize, nKv = c.nKvHeads, nKvTask = h1 - h0;
  const int64_t dp = (D + 63) / 64 * 64, dc = (D + 15) / 16 * 16;
  const int64_t G = a.nHeads / nKv, H = nKvTask * G;
  VnniScratch& s = vnniScratch(H, dp, dc);
  quantizeQueries(s, a.q + (t * a.nHeads + h0 * G) * D, H, D, dp, a.scale);
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
      kReadAheadBytes, nKvTask, 4 * D, [&](int64_t st) { return st <= gathered ? steps[st % 3].n : int64_t(0); },
      [&](int64_t st, int phase, int64_t kh, int64_t j) {
        return reinterpret_cast<const char*>((phase ? v8 : k8) + (steps[st % 3].row[j] + (h0 + kh) * bs) * D);
      });
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
      if (gi == 0 || far.row[gi] % bs == 0) {
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
    for (int64_t kh = 0; kh < nKvTask; kh++) {
      const int64_t headRow = (h0 + kh) * bs, g0 = kh * G;
      // The read-ahead is paced by one tile of heads only: every tile reads the same lines.
      vnniHeadTiles(G, [&](auto hg, int64_t g) {
        constexpr int HG = decltype(hg)::value;
        for (int64_t gi = 0; gi < st.n; gi += 4) {
          if (g == 0) vnniScoreTile<HG>(s, a, st, gi, g0 + g, headRow, s.p.data(), pace);
          else vnniScoreTile<HG>(s, a, st, gi, g0 + g, headRow, s.p.data(), noPace);
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
      for (int64_t g = g0; g < g0 + G; g++) vnniSoftmax(s, g, st, a);
    }
    for (int64_t kh = 0; kh < nKvTask; kh++) {
      const int64_t headRow = (h0 + kh) * bs, g0 = kh * G;
      const int8_t* vBase = v8 + headRow * D;
      vnniHeadTiles(G, [&](auto hg, int64_t g) {
        constexpr int HG = decltype(hg)::value;
        if (g == 0) vnniValues<HG>(s, st, vBase, D, dc, g0 + g, pace);
        else vnniValues<HG>(s, st, vBase, D, dc, g0 + g, noPace);
      });
    }
  }
  for (int64_t g = 0; g < H; g++) {
    const float l = s.l[g];
    const float inv = l > 0 ? 1.0f / l : 0.0f;
    for (int64_t d = 0; d < D; d++) out[g * D + d] = s.acc[g * dc + d] * inv;
    if (lse) lse[g] = l > 0 ? s.m[g] + std::log(l) : -INFINITY;
  }
}

// Whether this CPU runs vpdpbusd on zmm registers (asked once).
inline bool hasVnni() {
  static const bool yes = __builtin_cpu_supports("avx512vnni");
  return yes;
}

}  // namespace i8
}  // namespace LK_VARIANT

#endif
