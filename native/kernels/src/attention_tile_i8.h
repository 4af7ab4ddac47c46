// Prompt attention tiles on an int8 cache through byte products (see attention_tile.h for what a
// tile is): vpdpbusd where the CPU has VNNI at the build's width (AVX-512 VNNI on 512-bit vectors, 16
// rows a vector; AVX-VNNI on 256-bit ones, 8 rows), else vpmaddubsw and vpmaddwd with 7-bit queries
// and probabilities. Included by kernels.cpp inside its variant namespace, after
// attention_tile_fma.h (whose online softmax it shares) and kv_int8.h (the cache's layouts and
// i8::dotBytes).
//
// fp32 tiles on dequantized rows (what the portable build runs) multiply at the FMA's rate and were
// slower than the per-token byte-product kernels at head_dim 128. Here both products stay in bytes,
// four multiply-adds an instruction lane, on the decode kernels' arithmetic (kv_int8_zmm.h): each
// query row rounded once per tile, each step's probabilities (V scale folded in) to bytes per row
// against the row's largest, integer sums folded into fp32 once per step.
//
// Layouts (rows in lanes, as in the fp32 tiles; W rows a vector):
//   qt [D/4][R]     each row's quad of query elements as four u8 (code + offset), a 32-bit lane a row
//   s  [keys][R]    scores: s[j] += byte products of qt[i] and key j's quad i broadcast, then
//                   probabilities
//   p8 [keys/4][R]  each row's four byte probabilities of a group of keys, a 32-bit lane a row
//   o  [R][D]       running numerator: o[r] += byte products of p8[g][r] broadcast and V group g's W
//                   elements
// A score is (sum (q + offset) k - offset sum k) times the row's and the key's scales: the query is
// the unsigned operand, so the bias is each key's sum of codes, taken once per step.
#pragma once

#if defined(LK_I8_ZMM) || defined(LK_I8_YMM)
#define LK_I8_TILES 1

// Whether this CPU runs the byte tiles (vpdpbusd at this variant's width; asked once).
inline bool i8TilesAvailable() {
#if defined(LK_I8_ZMM)
  return i8::hasVnni();
#else
  return i8::hasAvxVnni();
#endif
}

// One vector register of W 32-bit lanes, as i8::dotBytes takes it (the products' sums are kept in
// the intrinsics' type: held as vi, each vpdpbusd came with register copies around it, half the
// instruction's rate in the peak loop). Without VNNI dotBytes' pairs of products may not pass
// 32,767, so the tiles take 7-bit queries and probabilities there (ByteRanges).
#if defined(LK_I8_ZMM)
typedef __m512i I8Reg;
#else
typedef __m256i I8Reg;
#endif


// The byte ranges of a path: queries rounded to +-kQueryMax and offset by kQueryOffset into u8,
// probabilities to 0..kProbMax (vpdpbusd: 8 bits each; vpmaddubsw: 7, so a pair of products stays
// under 32,768 against any code of K or V).
template <bool Vnni>
struct ByteRanges {
  static constexpr float kQueryMax = Vnni ? 127.0f : 63.0f;
  static constexpr int32_t kQueryOffset = Vnni ? 128 : 64;
  static constexpr float kProbMax = Vnni ? 255.0f : 127.0f;
};

inline I8Reg loadi(const void* p) {
  I8Reg v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline I8Reg spliti(int32_t x) { return I8Reg(vi{} + x); }
// Round to nearest, ties to even (the default mode), as the decode kernels round.
inline vi roundToInt(vf x) {
#if defined(LK_I8_ZMM)
  return vi(_mm512_cvtps_epi32(__m512(x)));
#else
  return vi(_mm256_cvtps_epi32(__m256(x)));
#endif
}
// The low byte of each lane of x (every lane in 0..255), W bytes in order.
inline __m128i lowBytes(vi x) {
#if defined(LK_I8_ZMM)
  return _mm512_cvtepi32_epi8(__m512i(x));
#else
  const __m256i v = __m256i(x);
  const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_packus_epi16(w16, w16);
#endif
}

// Keys a step: twice the fp32 tiles' 64, so each step's folding of the integer sums into fp32 and
// its calls are shared by twice the products. Steps start at multiples of it, as theirs do.
constexpr int64_t kI8TileKeys = 128;

// Register tiles: scores kI8SKeys keys x 2 vectors of rows, values kI8VRows rows x kI8VCols vectors
// of W elements; 512-bit vectors have 32 registers for them (16 and 24 sums), 256-bit ones 16 (8
// and 9).
constexpr int kI8SKeys = W == 16 ? 8 : 4, kI8SRows = 2;
constexpr int kI8VRows = W == 16 ? 6 : 3, kI8VCols = W == 16 ? 4 : 3;
constexpr int64_t kI8RowQuantum = kI8SRows * W;

struct I8TileScratch {
  lk::LineVector<uint8_t> qt;
  lk::LineVector<float> s, o;
  lk::LineVector<int32_t> p8;
  alignas(64) float qs[lk::kTileRows], unit[lk::kTileRows];
  alignas(64) float ks[kI8TileKeys], vs[kI8TileKeys];
  alignas(64) int32_t kBias[kI8TileKeys];
  const int8_t* kg[kI8TileKeys / 4];
  const int8_t* vg[kI8TileKeys / 4];
  TileRowState st;
  I8TileScratch()
      : qt(lk::kTileMaxHeadDim * lk::kTileRows),
        s(kI8TileKeys * lk::kTileRows),
        o(lk::kTileRows * lk::kTileMaxHeadDim),
        p8(kI8TileKeys / 4 * lk::kTileRows) {}
};

// A group of four zero keys (codes and scale 0) for the groups of a step outside the tile's keys,
// whose block-table entries may be stale.
alignas(64) inline const int8_t kZeroGroup[4 * lk::kTileMaxHeadDim] = {};

// Row r's query rounded to codes of +-kQueryMax (absmax / kQueryMax, ties to even, as the decode
// kernels round it) into qt as u8 (code + kQueryOffset), its scale into qs[r].
template <bool Vnni>
inline void i8TileQuery(I8TileScratch& t, int64_t R, int64_t r, const float* q, int64_t D) {
  using B = ByteRanges<Vnni>;
  vf mx = splat(0.0f);
  for (int64_t d = 0; d < D; d += W) {
    const vf x = loadf(q + d);
    mx = vmax(mx, vmax(x, -x));
  }
  const float amax = hmax(mx);
  const vf inv = splat(amax > 0 ? B::kQueryMax / amax : 0.0f);
  int32_t* qt = reinterpret_cast<int32_t*>(t.qt.data());
  for (int64_t d = 0; d < D; d += W) {
    // |q| * kQueryMax / amax <= kQueryMax: the codes need no clamp.
    alignas(16) int32_t quads[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(quads), lowBytes(roundToInt(loadf(q + d) * inv) + B::kQueryOffset));
    for (int i = 0; i < W / 4; i++) qt[(d / 4 + i) * R + r] = quads[i];
  }
  t.qs[r] = amax / B::kQueryMax;
}

// The step's groups (keys [k0, k0 + nk) of KV head kh): their K and V bytes, each key's scales (0
// outside [lo, hi)) and kQueryOffset x the sum of its K codes.
template <bool Vnni>
inline void i8TileStep(I8TileScratch& t, const KvArgs& c, const int32_t* table, int64_t k0, int64_t nk, int64_t lo,
                       int64_t hi, int64_t kh) {
  const int64_t D = c.headDim, bs = c.blockSize, nKv = c.nKvHeads;
  const int8_t* k8 = static_cast<const int8_t*>(c.k);
  const int8_t* v8 = static_cast<const int8_t*>(c.v);
  const I8Reg ones = spliti(0x01010101);
  for (int64_t g = 0; g < nk / 4; g++) {
    const int64_t p0 = k0 + 4 * g;
    if (p0 + 4 <= lo || p0 >= hi) {
      t.kg[g] = t.vg[g] = kZeroGroup;
      for (int l = 0; l < 4; l++) t.ks[4 * g + l] = t.vs[4 * g + l] = 0.0f, t.kBias[4 * g + l] = 0;
      continue;
    }
    const int64_t row = (int64_t(table[p0 / bs]) * nKv + kh) * bs + p0 % bs;  // the group's first token
    t.kg[g] = k8 + row * D;
    t.vg[g] = v8 + row * D;
    // Lane 4i + l of the sums: key l's quads i, i + 4, ...; the 128-bit lanes added give each key's
    // sum. Two chains: the sums are a dependency chain of vpdpbusd otherwise.
    I8Reg sum = I8Reg(vi{}), sum2 = I8Reg(vi{});
    int64_t b = 0;
    for (; b + 8 * W <= 4 * D; b += 8 * W) {
      i8::dotBytes<Vnni>(sum, ones, loadi(t.kg[g] + b));
      i8::dotBytes<Vnni>(sum2, ones, loadi(t.kg[g] + b + 4 * W));
    }
    if (b < 4 * D) i8::dotBytes<Vnni>(sum, ones, loadi(t.kg[g] + b));
    const vi sums = vi(sum) + vi(sum2);
    for (int l = 0; l < 4; l++) {
      int32_t k = 0;
      for (int i = l; i < W; i += 4) k += sums[i];
      t.kBias[4 * g + l] = ByteRanges<Vnni>::kQueryOffset * k;
      const bool in = p0 + l >= lo && p0 + l < hi;
      t.ks[4 * g + l] = in ? c.kScale[row + l] : 0.0f;
      t.vs[4 * g + l] = in ? c.vScale[row + l] : 0.0f;
    }
  }
}

// Scores of kI8SKeys keys (from j0) x kI8SRows vectors of rows (from r0), in the fp32 tiles' units
// (the call's scale not applied). Every loop over a register tile is unrolled, so its sums live in
// registers (an array indexed by a loop variable stays in memory).
template <bool Vnni>
LK_I8_TILE inline void i8TileScores(I8TileScratch& t, int64_t R, int64_t D, int64_t j0, int64_t r0) {
  I8Reg acc[kI8SKeys][kI8SRows];
#pragma GCC unroll 8
  for (int j = 0; j < kI8SKeys; j++)
#pragma GCC unroll 8
    for (int v = 0; v < kI8SRows; v++) acc[j][v] = I8Reg(vi{});
  const int8_t* key[kI8SKeys];
#pragma GCC unroll 8
  for (int j = 0; j < kI8SKeys; j++) key[j] = t.kg[(j0 + j) / 4] + 4 * ((j0 + j) % 4);
  for (int64_t i = 0; i < D / 4; i++) {  // quad i of a key: 16 i bytes into its group (head_dim % 16 == 0)
    I8Reg q[kI8SRows];
#pragma GCC unroll 8
    for (int v = 0; v < kI8SRows; v++) q[v] = loadi(t.qt.data() + (i * R + r0 + W * v) * 4);
#pragma GCC unroll 8
    for (int j = 0; j < kI8SKeys; j++) {
      const I8Reg k = spliti(*reinterpret_cast<const i8::ByteWord*>(key[j] + 16 * i));
#pragma GCC unroll 8
      for (int v = 0; v < kI8SRows; v++) i8::dotBytes<Vnni>(acc[j][v], q[v], k);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < kI8SKeys; j++) {
    const float ks = t.ks[j0 + j];
    const int32_t bias = t.kBias[j0 + j];
#pragma GCC unroll 8
    for (int v = 0; v < kI8SRows; v++) {
      const vf sc = __builtin_convertvector(vi(acc[j][v]) - bias, vf);
      storef(t.s.data() + (j0 + j) * R + r0 + W * v, sc * loadf(t.qs + r0 + W * v) * ks);
    }
  }
}

// Rows [r0, r0 + W)'s probabilities of the step, V scales folded in (s, as fmaSoftmax leaves them
// with the V scales as weights; wmax their largest per row), as bytes (the largest of each row
// kProbMax), four keys a 32-bit lane, into p8; each row's unit (one byte's worth) into t.unit.
template <bool Vnni>
inline void i8TileProbabilities(I8TileScratch& t, int64_t R, int64_t nk, int64_t r0, vf wmax) {
  const float* s = t.s.data();
  constexpr float kProbMax = ByteRanges<Vnni>::kProbMax;
  const vf toByte = wmax > 0.0f ? kProbMax / wmax : splat(0.0f);
  storef(t.unit + r0, wmax * (1.0f / kProbMax));
  for (int64_t g = 0; g < nk / 4; g++) {
    __m128i b[4];  // key 4g + l's bytes of the W rows
#pragma GCC unroll 4
    for (int l = 0; l < 4; l++) {
      const int64_t j = 4 * g + l;
      b[l] = lowBytes(roundToInt(loadf(s + j * R + r0) * toByte));  // 0..kProbMax
    }
    // Interleaved so each row's four bytes are one 32-bit lane, rows in order.
    const __m128i t01l = _mm_unpacklo_epi8(b[0], b[1]), t23l = _mm_unpacklo_epi8(b[2], b[3]);
    int32_t* dst = t.p8.data() + g * R + r0;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_unpacklo_epi16(t01l, t23l));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 4), _mm_unpackhi_epi16(t01l, t23l));
    if constexpr (W == 16) {
      const __m128i t01h = _mm_unpackhi_epi8(b[0], b[1]), t23h = _mm_unpackhi_epi8(b[2], b[3]);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 8), _mm_unpacklo_epi16(t01h, t23h));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 12), _mm_unpackhi_epi16(t01h, t23h));
    }
  }
}

// o rows [r0, r0 + RB), elements [W c0, W (c0 + DC)): rescaled by their rows' corr, plus the step's
// byte probabilities times its V groups (integer sums, folded once).
template <bool Vnni, int RB, int DC>
LK_I8_TILE inline void i8TileValues(I8TileScratch& t, int64_t R, int64_t D, int64_t nk, int64_t r0, int64_t c0) {
  I8Reg acc[RB][DC];
#pragma GCC unroll 8
  for (int r = 0; r < RB; r++)
#pragma GCC unroll 8
    for (int c = 0; c < DC; c++) acc[r][c] = I8Reg(vi{});
  for (int64_t g = 0; g < nk / 4; g++) {
    I8Reg v[DC];
#pragma GCC unroll 8
    for (int c = 0; c < DC; c++) v[c] = loadi(t.vg[g] + (c0 + c) * 4 * W);
#pragma GCC unroll 8
    for (int r = 0; r < RB; r++) {
      const I8Reg w = spliti(t.p8[g * R + r0 + r]);
#pragma GCC unroll 8
      for (int c = 0; c < DC; c++) i8::dotBytes<Vnni>(acc[r][c], w, v[c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < RB; r++) {
    const float corr = t.st.corr[r0 + r], unit = t.unit[r0 + r];
#pragma GCC unroll 8
    for (int c = 0; c < DC; c++) {
      float* at = t.o.data() + (r0 + r) * D + (c0 + c) * W;
      storef(at, __builtin_convertvector(vi(acc[r][c]), vf) * unit + loadf(at) * corr);
    }
  }
}

// Rows [0, rows) in tiles of kI8VRows, the rest in one tile of its own size, columns DC vectors at
// a time.
template <bool Vnni, int DC>
inline void i8TileValueCols(I8TileScratch& t, int64_t R, int64_t D, int64_t nk, int64_t rows, int64_t c0) {
  int64_t r = 0;
  for (; r + kI8VRows <= rows; r += kI8VRows) i8TileValues<Vnni, kI8VRows, DC>(t, R, D, nk, r, c0);
  switch (rows - r) {
    case 5: return i8TileValues<Vnni, 5, DC>(t, R, D, nk, r, c0);
    case 4: return i8TileValues<Vnni, 4, DC>(t, R, D, nk, r, c0);
    case 3: return i8TileValues<Vnni, 3, DC>(t, R, D, nk, r, c0);
    case 2: return i8TileValues<Vnni, 2, DC>(t, R, D, nk, r, c0);
    case 1: return i8TileValues<Vnni, 1, DC>(t, R, D, nk, r, c0);
    default: return;
  }
}

// Query tokens [t0, t1) of one sequence against KV head kh of an int8 cache, as attentionTileFma
// (the same checks by the caller); Vnni only where i8TilesAvailable().
template <bool Vnni>
inline void attentionTileI8(const AttnArgs& a, int64_t t0, int64_t t1, int64_t kh) {
  const KvArgs& c = a.cache;
  const int64_t D = c.headDim, G = a.nHeads / c.nKvHeads;
  const int64_t rows = (t1 - t0) * G, R = (rows + kI8RowQuantum - 1) / kI8RowQuantum * kI8RowQuantum;
  thread_local I8TileScratch t;
  int32_t lo, hi;
  tileInitRows(a, t0, kh, rows, R, t.st, lo, hi, [&](int64_t r, const float* q) { i8TileQuery<Vnni>(t, R, r, q, D); });
  std::fill(t.o.begin(), t.o.begin() + R * D, 0.0f);
  const int32_t* table = a.blockTables + int64_t(a.qSeq[t0]) * a.maxBlocksPerSeq;
  for (int64_t k0 = lo / kI8TileKeys * kI8TileKeys; k0 < hi; k0 += kI8TileKeys) {
    const int64_t nk = std::min<int64_t>(kI8TileKeys, (hi - k0 + kI8SKeys - 1) / kI8SKeys * kI8SKeys);
    i8TileStep<Vnni>(t, c, table, k0, nk, lo, hi, kh);
    for (int64_t j = 0; j < nk; j += kI8SKeys)
      for (int64_t r0 = 0; r0 < R; r0 += kI8RowQuantum) i8TileScores<Vnni>(t, R, D, j, r0);
    const float scale = tileCapScores(a, t.s.data(), R, nk);
    for (int64_t r0 = 0; r0 < R; r0 += W) {
      vf wmax;
      fmaSoftmax(t.s.data(), R, t.st, r0, k0, nk, scale, t.vs, &wmax);
      i8TileProbabilities<Vnni>(t, R, nk, r0, wmax);
    }
    int64_t c0 = 0;
    for (; c0 + kI8VCols <= D / W; c0 += kI8VCols) i8TileValueCols<Vnni, kI8VCols>(t, R, D, nk, rows, c0);
    for (; c0 < D / W; c0++) i8TileValueCols<Vnni, 1>(t, R, D, nk, rows, c0);
  }
  tileWriteRows(a, t0, kh, rows, t.o.data(), t.st);
}

// n rounds of kByteDotChains independent byte-product chains (W lanes x 4 multiply-adds, 8 W
// operations, each a round) through vpdpbusd where Vnni (only where i8TilesAvailable()), else
// vpmaddubsw and vpmaddwd: the peak of the byte tiles' products. The sum is returned so the loop
// cannot be dropped.
constexpr int kByteDotChains = W == 16 ? 24 : 12;
template <bool Vnni>
inline double byteDotLoop(int64_t n) {
  I8Reg c[kByteDotChains];
#pragma GCC unroll 32
  for (int i = 0; i < kByteDotChains; i++) c[i] = spliti(i);
  I8Reg a = spliti(0x03030303);
  const I8Reg b = spliti(int32_t(0xfbfbfbfb));
  for (int64_t r = 0; r < n; r++) {
    // The input made opaque before each product: vpmaddubsw and vpmaddwd of the same registers would
    // be computed once for every chain (and once for all rounds), leaving only the additions.
#pragma GCC unroll 32
    for (int i = 0; i < kByteDotChains; i++) {
      asm("" : "+v"(a));
      i8::dotBytes<Vnni>(c[i], a, b);
    }
  }
  vi s = vi(c[0]);
#pragma GCC unroll 32
  for (int i = 1; i < kByteDotChains; i++) s += vi(c[i]);
  int64_t total = 0;
  for (int i = 0; i < W; i++) total += s[i];
  return double(total);
}
constexpr double kByteDotOpsPerRound = kByteDotChains * 8.0 * W;

#endif
