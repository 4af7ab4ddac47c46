// Decode attention on float caches: one query token against a range of its KV heads and keys,
// walked step by step with an online softmax (attentionPart), the dispatch by KV dtype (an int8
// cache goes to kv_int8.h), and the read pattern alone for the benchmarks (attentionLoads).
// Included by kernels.cpp inside its variant namespace, after the kernels it calls.
#pragma once

// The bytes of n rows (rows[j] + off is row j's first element) summed as 64-bit words (lk::sumWords):
// what the read-pattern yardstick does with each row it reads (attentionPart<DT, true>).
template <int DT>
inline uint64_t sumRows(const void* base, const int64_t* rows, int64_t off, int64_t n, int64_t rowBytes) {
  constexpr int64_t es = DT == 0 ? 4 : 2;
  uint64_t x = 0;
  for (int64_t j = 0; j < n; j++) x += lk::sumWords(static_cast<const char*>(base) + (rows[j] + off) * es, rowBytes);
  return x;
}

// One query token against KV heads [h0, h1) over keys [p0, p1). The heads walk the range
// together, block by block: the K (then V) rows of all the task's heads of one block are one
// contiguous region, so the reads are long runs the hardware prefetcher follows, where one head at
// a time would read a few KiB from each scattered block. Contiguous runs of blocks are gathered into
// online-softmax steps of stepKeys(blockSize) keys, their keys interleaved across the step's blocks: every head's
// scores for the step, the softmax update, then the values.
// LoadsOnly: the task's K and V rows read in the kernels' order, with the same steps, read-ahead
// and prefetches, and nothing computed: the sum of their bytes as 64-bit words is returned (out and
// lse are not written). The benchmarks' limit of the read pattern itself (attentionReadPattern).
template <int DT, bool LoadsOnly = false>
uint64_t attentionPart(const AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1, float* out,
                       float* lse) {
  uint64_t loaded = 0;
  const KvArgs& c = a.cache;
  const int64_t D = c.headDim, bs = c.blockSize, nKv = c.nKvHeads;
  const int64_t G = a.nHeads / nKv, H = (h1 - h0) * G;
  const int64_t headStride = bs * D;  // from one KV head's rows of a block to the next head's
  const bool pairs = D % (2 * W) == 0;
  AttnScratch& s = attnScratch(H, D);
  float* acc = s.acc.data();
  float* sc = s.scores.data();
  const float* qt = a.q + (t * a.nHeads + h0 * G) * D;  // the task's query heads are contiguous
  // With pairs of a permuting dtype, q and the accumulator are kept in loadPair's even/odd order.
  const bool permuted = pairs && pairPermuted<DT>();
  const float* q = qt;
  // A bf16 cache with grouped queries multiplies through vdpbf16ps (see dpScoresTile) where this
  // build does (kBf16DotAttention); for MHA (G = 1) the widening kernels measured faster
  // (BENCHMARKS.md).
  const bool dp = kBf16DotAttention && DT == 2 && D % 32 == 0 && G >= 2;
  if (dp) {
#if defined(__AVX512BF16__)
    for (int64_t i = 0; i < H * D; i += 32) _mm512_storeu_si512(s.qb.data() + i, (__m512i)toBf16x32(qt + i));
    for (int64_t kh = 0; kh < h1 - h0; kh++)
      for (int64_t g = kh * G; g + 4 <= (kh + 1) * G; g += 4)
        quadQueries(s.qx.data() + g * D, s.qb.data() + g * D, D);
#endif
  } else if (permuted) {
    toPairOrder(s.q.data(), qt, H * D);
    q = s.q.data();
  }
  std::fill(acc, acc + H * D, 0.0f);
  std::fill(s.m.begin(), s.m.begin() + H, -INFINITY);
  std::fill(s.l.begin(), s.l.begin() + H, 0.0f);
  const int32_t* table = a.blockTables + int64_t(a.qSeq[t]) * a.maxBlocksPerSeq;
  const int64_t chunk = stepKeys(bs);
  auto gather = [&](int64_t p, Step& st) {
    st.n = 0;
    st.nRuns = 0;
    while (p < p1 && st.n < chunk) {
      const int64_t off = p % bs;
      const int64_t len = std::min<int64_t>({bs - off, p1 - p, chunk - st.n});
      st.base[st.nRuns] = (table[p / bs] * nKv * bs + off) * D + h0 * headStride;
      st.len[st.nRuns++] = len;
      st.n += len;
      p += len;
    }
    splitRuns(st, D, D * (DT == 0 ? 4 : 2));
    return p;
  };
  constexpr int64_t es = DT == 0 ? 4 : 2;  // bytes an element
  const int64_t nh = h1 - h0, rowBytes = D * es;
  Step steps[3];
  int64_t rowsOf[3][kChunk];  // each gathered step's keys' row offsets, in the order the kernels read them
  const int64_t* rows = rowsOf[0];  // the rows of the step being read
  // Where this CPU gains by it (a.readAhead: Intel's; a.readAheadBf16Dot for the vdpbf16ps kernels:
  // every CPU's), the kernels' reads are asked for
  // kReadAheadBytes ahead in their order, across steps, paced from each kernel call; elsewhere,
  // with grouped queries, each row feeds several heads' arithmetic, and the core, busy with it,
  // keeps too few of the rows' cache misses in flight: the reads and the arithmetic took about the
  // sum of their times. So each kernel call first asks for the rows of the call after it (the next
  // 16 keys of the same KV head, or the next head's first 16) in L1. Alternating A/B, context
  // 4,096, 2 threads, bf16, calls back to back: 2.6-2.8 against 2.9-3.2 ms a call on avx512bf16
  // (both with quadScores), 4.8-5.0 against 5.0-5.1 on avx2; for MHA it was slower (15.3 against
  // 13.3 ms), so only G >= 2 does it.
  const bool readAhead = (dp ? a.readAheadBf16Dot : a.readAhead) && aheadPays(rowBytes, (p1 - p0) * nh * rowBytes * 2),
             prefetchNext = !readAhead && G >= 2;
  int64_t gathered = 1;  // the last step gathered
  auto ra = makeReadAhead(
      kReadAheadBytes, nh, rowBytes,
      ReadLayout{static_cast<const char*>(c.k), static_cast<const char*>(c.v), 0, headStride, es},
      [&](int64_t st) { return st <= gathered ? steps[st % 3].n : int64_t(0); },
      [&](int64_t st) -> const int64_t* { return rowsOf[st % 3]; });
  auto pace = [&](int64_t n) {
    if (readAhead) ra.consumed(n * rowBytes);
  };
  auto nextCall = [&](const void* base, int64_t n, int64_t kh, int64_t m) {
    if (!prefetchNext) return;
    if (m + kSub < n) return prefetchRows<DT>(base, rows + m + kSub, kh * headStride, std::min(kSub, n - m - kSub), D);
    if (kh + 1 < nh) prefetchRows<DT>(base, rows, (kh + 1) * headStride, std::min(kSub, n), D);
  };
  auto scores = [&](int64_t n, int64_t kh, int64_t m) {
    float* out = sc + kh * G * kChunk + m;
    const int64_t ns = std::min(kSub, n - m);
    pace(ns);
    nextCall(c.k, n, kh, m);
    if constexpr (LoadsOnly) {
      loaded += sumRows<DT>(c.k, rows + m, kh * headStride, ns, rowBytes);
      return;
    }
#if defined(__AVX512BF16__)
    if (dp) return dpScoresAll(s.qb.data() + kh * G * D, s.qx.data() + kh * G * D, G, D, c.k, rows + m, kh * headStride, ns, a.scale, out);
#endif
    scoresAll<DT>(pairs, q + kh * G * D, G, D, c.k, rows + m, kh * headStride, ns, a.scale, out);
  };
  auto values = [&](int64_t n, int64_t kh, int64_t m) {
    const int64_t ns = std::min(kSub, n - m), first = kh * G * kChunk + m;
    pace(ns);
    nextCall(c.v, n, kh, m);
    if constexpr (LoadsOnly) {
      loaded += sumRows<DT>(c.v, rows + m, kh * headStride, ns, rowBytes);
      return;
    }
#if defined(__AVX512BF16__)
    if (dp) return dpValuesAll(acc + kh * G * D, G, D, c.v, rows + m, kh * headStride, ns, s.pb.data() + first);
#endif
    valuesAll<DT>(pairs, acc + kh * G * D, G, D, c.v, rows + m, kh * headStride, ns, sc + first);
  };
  auto softmax = [&](int64_t n) {
    if constexpr (LoadsOnly) return;
    const int64_t nPad = (n + W - 1) / W * W;
    for (int64_t g = 0; g < H; g++) {
      float* row = sc + g * kChunk;
      if (a.softcap > 0) softcapScores(row, n, a.softcap);  // Gemma 2
      // Lanes past n read as -inf: their exp, 0, is stored for the values kernel.
      auto scoresAt = [&](int64_t j) { return scoresVector(row, j, n); };
      vf mv = splat(-INFINITY);
      for (int64_t j = 0; j < nPad; j += W) mv = vmax(mv, scoresAt(j));
      const float mNew = std::max(s.m[g], hmax(mv));
      const float corr = std::exp(s.m[g] - mNew);  // 0 on the first step (m = -inf)
      if (corr != 1.0f) {
        float* ag = acc + g * D;
        for (int64_t i = 0; i < D; i++) ag[i] *= corr;
      }
      vf lv = splat(0.0f);
#if defined(__AVX512BF16__)
      if (dp) {  // the probabilities rounded to bf16 for the values kernel, and summed as rounded
        uint16_t* pg = s.pb.data() + g * kChunk;
        for (int64_t j = 0; j < nPad; j += W) {
          const __m256bh e = _mm512_cvtneps_pbh((__m512)vexpNonPositive(scoresAt(j) - mNew));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(pg + j), (__m256i)e);
          lv += (vf)_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)e), 16));
        }
      } else
#endif
        for (int64_t j = 0; j < nPad; j += W) {
          const vf e = vexpNonPositive(scoresAt(j) - mNew);
          storef(row + j, e);
          lv += e;
        }
      s.l[g] = s.l[g] * corr + hsum(lv);
      s.m[g] = mNew;
    }
  };
  // Each block is a region of its own, so every run starts with a TLB miss and the hardware
  // prefetcher has to find it. Touching the first lines of each run two steps ahead gets the page
  // walk (and the DRAM row open) done long before the data is needed.
  // The step's keys interleaved across its runs (key m from run m % nRuns while all last), so
  // the kernels read every block of the step at once: several sequential streams keep more lines
  // in flight than one (a plain read of the same blocks gains about a fifth).
  auto gatherInOrder = [&](int64_t from, int64_t stepNo) {
    Step& st = steps[stepNo % 3];
    const int64_t next = gather(from, st);
    int64_t* out = rowsOf[stepNo % 3];
    for (int64_t i = 0, m = 0; m < st.n; i++)
      for (int r = 0; r < st.nRuns; r++)
        if (i < st.len[r]) out[m++] = st.base[r] + i * D;
    return next;
  };
  int64_t p = gatherInOrder(p0, 0);
  p = gatherInOrder(p, 1);
  for (int64_t stepNo = 0; steps[stepNo % 3].n > 0; stepNo++) {
    const Step& st = steps[stepNo % 3];
    const Step& far = steps[(stepNo + 2) % 3];
    p = gatherInOrder(p, stepNo + 2);
    gathered = stepNo + 2;
    for (int r = 0; r < far.nRuns; r++) {
      touchRows<DT>(c.k, far.base[r]);
      touchRows<DT>(c.v, far.base[r]);
    }
    const int64_t n = st.n;
    rows = rowsOf[stepNo % 3];
    for (int64_t kh = 0; kh < nh; kh++)
      for (int64_t m = 0; m < n; m += kSub) scores(n, kh, m);
    softmax(n);
    for (int64_t kh = 0; kh < nh; kh++)
      for (int64_t m = 0; m < n; m += kSub) values(n, kh, m);
  }
  if constexpr (LoadsOnly) return loaded;
  for (int64_t g = 0; g < H; g++) {
    const float l = s.l[g];
    const float inv = l > 0 ? 1.0f / l : 0.0f;
    if (dp) {
#if defined(__AVX512BF16__)
      fromUnpackOrder(out + g * D, acc + g * D, D, inv);
#endif
    } else if (permuted) {
      fromPairOrder(out + g * D, acc + g * D, D, inv);
    } else {
      for (int64_t i = 0; i < D; i++) out[g * D + i] = acc[g * D + i] * inv;
    }
    if (lse) lse[g] = l > 0 ? s.m[g] + std::log(l) : -INFINITY;
  }
  return 0;
}

template <bool AllowVnni>
void attentionWith(const AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1, float* out,
                   float* lse) {
  if (a.cache.dtype == lk::kI8) return i8::attention<AllowVnni>(a, t, h0, h1, p0, p1, out, lse);  // kv_int8.h
  if (a.cache.dtype == lk::kF32) attentionPart<0>(a, t, h0, h1, p0, p1, out, lse);
  else if (a.cache.dtype == lk::kF16) attentionPart<1>(a, t, h0, h1, p0, p1, out, lse);
  else attentionPart<2>(a, t, h0, h1, p0, p1, out, lse);
}

void attention(const AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1, float* out,
               float* lse) {
  attentionWith<true>(a, t, h0, h1, p0, p1, out, lse);
}

// The decode kernels' reads alone: attentionPart's on a float cache, the int8 dot-product paths'
// (kv_int8.h) on an int8 cache; false where the int8 path widens (no loads-only twin).
bool attentionLoads(const AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1, uint64_t* sum) {
  if (a.cache.dtype == lk::kI8) return i8::attentionLoads(a, t, h0, h1, p0, p1, sum);
  if (a.cache.dtype == lk::kF32) *sum = attentionPart<0, true>(a, t, h0, h1, p0, p1, nullptr, nullptr);
  else if (a.cache.dtype == lk::kF16) *sum = attentionPart<1, true>(a, t, h0, h1, p0, p1, nullptr, nullptr);
  else *sum = attentionPart<2, true>(a, t, h0, h1, p0, p1, nullptr, nullptr);
  return true;
}
