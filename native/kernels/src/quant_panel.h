// Batched quantized products (prefill chunks, large decode batches): an outer-product micro-kernel
// on int8 activations. Included by quant_kernels.cpp in its x86 variants, after the block decoders.
//
// The matrix-vector tile reduces every 32-value dot product across its lanes to apply the block's
// scales, once per row and token. Here the lanes are rows instead: a slice's rows are decoded once
// per call into a panel where each 4-byte step of a block holds that step of L consecutive rows
// (L = 16 on AVX-512, 8 on AVX2), so one byte dot product (vpdpbusd, or maddubs + madd) against a
// token's 4 activation bytes, broadcast, advances L rows at once and no lane sum is ever needed.
// After each block (each half-block for Q6_K, whose scales are per 16 values) the int32 sums are
// converted and scaled in float: weight scales per lane times the token's activation scale, and
// a format's offset or min is one more FMA against the activations' d·Σq of that block.
//
// Panel bytes, per group of L rows g and block b (blockStride bytes):
//   q[8][L][4]       the block's 32 values as unsigned bytes (4-bit formats 0-15, 5-bit 0-31, Q6_K 0-63, Q8_0 +128
//                    with VNNI; Q8_0 as signed bytes without VNNI, multiplied by the sign trick)
//   scale[H][L]      each row's scale of the (half-)block (H = 2 for Q6_K, else 1)
//   off[H][L]        each row's offset per unit of the activations' d·Σq (Q4_0: 8d, Q5_0: 16d, Q8_0
//                    with VNNI: 128d, Q4_K/Q5_K: dmin·m, Q4_1/Q5_1: −m, Q6_K: 32·scale)

#if defined(__AVX512VNNI__) || defined(__AVXVNNI__)
constexpr bool kPanelVnni = true;
#else
constexpr bool kPanelVnni = false;
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__)
struct PanelLanes {
  static constexpr int L = 16, R = 2, T = 6;  // a tile: R groups of L rows x T tokens
  using I = __m512i;
  using F = __m512;
  static I zero() { return _mm512_setzero_si512(); }
  static I load(const uint8_t* p) { return _mm512_loadu_si512(p); }
  static I bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  }
  // acc + per lane Σ of 4 products, u unsigned and s signed bytes.
  static I dot(I acc, I u, I s) {
#if defined(__AVX512VNNI__)
    return _mm512_dpbusd_epi32(acc, u, s);
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
#endif
  }
  // w signed: |w| against x with w's signs (|w| <= 128 keeps maddubs' pair sums unsaturated).
  static I dotSigned(I acc, I w, I x) {
    const __mmask64 neg = _mm512_movepi8_mask(w);
    return dot(acc, _mm512_abs_epi8(w), _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x));
  }
  static F cvt(I v) { return _mm512_cvtepi32_ps(v); }
  static F zeroF() { return _mm512_setzero_ps(); }
  static F loadF(const float* p) { return _mm512_loadu_ps(p); }
  static F set1(float v) { return _mm512_set1_ps(v); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
};
#else
struct PanelLanes {
  static constexpr int L = 8, R = 2, T = 3;
  using I = __m256i;
  using F = __m256;
  static I zero() { return _mm256_setzero_si256(); }
  static I load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static I bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  static I dot(I acc, I u, I s) {
#if defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
  }
  static I dotSigned(I acc, I w, I x) { return dot(acc, _mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)); }
  static F cvt(I v) { return _mm256_cvtepi32_ps(v); }
  static F zeroF() { return _mm256_setzero_ps(); }
  static F loadF(const float* p) { return _mm256_loadu_ps(p); }
  static F set1(float v) { return _mm256_set1_ps(v); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
};
#endif

constexpr int panelHalves(int QT) { return QT == lk::kQ6_K || QT == lk::kQ3_K || QT == lk::kQ2_K ? 2 : 1; }
// Q8_0 without VNNI keeps its signed bytes and has no offset.
constexpr bool panelOffset(int QT) { return !lk::signedQuant(QT) || kPanelVnni; }
constexpr int64_t panelBlockStride(int QT) { return 32 * PanelLanes::L + 8 * panelHalves(QT) * PanelLanes::L; }
// Rows a panel holds.
constexpr int64_t kPanelRows = int64_t(PanelLanes::L) * PanelLanes::R;
// The smallest batch worth a panel, by format: decoding a 4096x4096 matrix into panels costs about
// 1.7 ms on one thread, 2-4 matrix-vector products (Q8_0 0.77 ms, Q4_K 0.38 ms on AVX-512, 0.7 ms on
// AVX2; the panels then add about 0.06 ms a token), so below this a batch runs one matrix-vector
// product per token.
// The 512-bit row paths (every format but Q8_0; IQ4_NL, IQ4_XS and MXFP4 with VNNI) take a small
// batch whole, reading the weights once for all its tokens, so the panels start later there.
// Llama-3.2-1B-shaped models decoding on two threads, aggregate tokens a second on the row paths
// against the panels: Q4_K_M 92 against 75 at 8 sequences, 93 against 99 at 12 (the row paths'
// time grows with the tokens past 4, the panels' hardly); IQ4_XS 94 against 57 at 4, 87 against 75
// at 6, 106 against 91 at 8. Q8_0 runs a small batch on the lane-sum tile, as fast as the panels
// from 3 tokens.
#if defined(__AVX512F__) && defined(__AVX512BW__)
constexpr int64_t kRowsTo = 10;
#if defined(__AVX512VNNI__)
constexpr int64_t kLevelsTo = kRowsTo;
#else
constexpr int64_t kLevelsTo = 3;
#endif
constexpr int64_t kPanelFrom[lk::kQuantTypes] = {3,      kRowsTo, kRowsTo, kRowsTo, kRowsTo, kRowsTo,  kRowsTo,
                                                 kRowsTo, kRowsTo, kRowsTo, kLevelsTo, kLevelsTo, kLevelsTo};
#else
constexpr int64_t kPanelFrom[lk::kQuantTypes] = {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3};
#endif

// dword k of eight rows' 32-byte vectors into out[k] (an 8x8 transpose of 32-bit elements).
inline void transpose8x8(const __m256i* v, __m256i* out) {
  __m256i t[8], u[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
  }
  for (int i = 0; i < 2; i++) {
    u[4 * i] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int k = 0; k < 4; k++) {
    out[k] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x20);
    out[k + 4] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x31);
  }
}

// The scales and offsets of row `row`'s blocks into a panel lane (l of the group at `group`).
template <int QT>
void packScales(const uint8_t* row, int64_t nb, uint8_t* group, int l) {
  constexpr int L = PanelLanes::L, H = panelHalves(QT);
  constexpr int64_t BS = panelBlockStride(QT);
  auto scaleAt = [&](int64_t b) { return reinterpret_cast<float*>(group + b * BS + 32 * L); };
  if constexpr (!lk::isSuperBlock(QT)) {
    for (int64_t b = 0; b < nb; b++) {
      float d, off;
      blockScale(QT, row + b * blockBytes(QT), d, off);
      scaleAt(b)[l] = d;
      scaleAt(b)[L + l] = lk::signedQuant(QT) ? (kPanelVnni ? 128.0f * d : 0.0f) : off;
    }
  } else {
    for (int64_t g0 = 0; g0 < nb; g0 += 8) {
      const uint8_t* g = row + (g0 / 8) * blockBytes(QT);
      GroupScales s;
      groupScales(QT, g, s);
      for (int b = 0; b < 8; b++) {
        float* sc = scaleAt(g0 + b);
        sc[l] = s.lo[b];
        // A signed format's bytes went up by 128 for the unsigned-by-signed VNNI dot (packPanel).
        sc[H * L + l] = lk::signedQuant(QT) ? (kPanelVnni ? 128.0f * s.lo[b] : 0.0f) : s.offLo[b];
        if (H == 2) {
          sc[L + l] = s.hi[b];
          sc[3 * L + l] = s.offHi[b];
        }
      }
    }
  }
}

// Rows [r0, r0 + n) of the matrix (n <= kPanelRows) decoded into a panel; its other rows are zeros.
// Eight rows at a time: each block of the eight is decoded to a 32-byte vector, and one 8x8
// transpose of dwords lays the eight rows side by side for every 4-byte step.
template <int QT>
void packPanel(const QuantMatmulArgs& a, int64_t r0, int64_t n, uint8_t* panel) {
  constexpr int L = PanelLanes::L, H = panelHalves(QT);
  constexpr int64_t BS = panelBlockStride(QT);
  constexpr bool kQuad = lk::isSuperBlock(QT);
  const int64_t nb = a.cols / 32, gs = nb * BS;
  const int64_t rowBytes = a.cols / (kQuad ? 256 : 32) * blockBytes(QT);
  for (int64_t p8 = 0; p8 < kPanelRows; p8 += 8) {
    uint8_t* group = panel + (p8 / L) * gs;
    const int l0 = int(p8 % L);
    const uint8_t* rows[8];
    for (int i = 0; i < 8; i++) rows[i] = p8 + i < n ? a.w + (r0 + p8 + i) * rowBytes : nullptr;
    for (int64_t b = 0; b < nb; b++) {
      __m256i v[8], out[8];
      for (int i = 0; i < 8; i++) {
        if (!rows[i]) {
          v[i] = _mm256_setzero_si256();
          continue;
        }
        v[i] = kQuad ? blockVec<QT>(rows[i] + (b / 8) * blockBytes(QT), int(b % 8)) : blockVec<QT>(rows[i], int(b));
        if (lk::signedQuant(QT) && kPanelVnni) v[i] = _mm256_xor_si256(v[i], _mm256_set1_epi8(char(0x80)));
      }
      transpose8x8(v, out);
      uint8_t* blk = group + b * BS + l0 * 4;
      for (int k = 0; k < 8; k++) _mm256_storeu_si256(reinterpret_cast<__m256i*>(blk + k * 4 * L), out[k]);
    }
    for (int i = 0; i < 8; i++) {
      if (rows[i]) {
        packScales<QT>(rows[i], nb, group, l0 + i);
        continue;
      }
      for (int64_t b = 0; b < nb; b++) {
        float* sc = reinterpret_cast<float*>(group + b * BS + 32 * L);
        for (int h = 0; h < 2 * H; h++) sc[h * L + l0 + i] = 0.0f;
      }
    }
  }
}

// Tokens [t, t + T) against a panel holding rows [r0, r0 + n): out[t + j][r0 + ...] for the n rows.
template <int QT, int T>
void panelTile(const QuantMatmulArgs& a, const uint8_t* panel, int64_t r0, int64_t n, int64_t t) {
  using V = PanelLanes;
  constexpr int L = V::L, R = V::R, H = panelHalves(QT), K = 8 / H;
  constexpr int64_t BS = panelBlockStride(QT);
  const int64_t nb = a.cols / 32, gs = nb * BS, xs = lk::actStride(a.cols);
  const int8_t* xq[T];
  const float* xd[T];
  const float* xsum[T];  // d·Σq per block (Q6_K: per half, in ds16's order)
  for (int j = 0; j < T; j++) {
    const uint8_t* x = a.xq + (t + j) * xs;
    xq[j] = lk::actQ(x, a.cols);
    xd[j] = lk::actD(x);
    xsum[j] = H == 2 ? lk::actDs16(x, a.cols) : lk::actDs32(x, a.cols);
  }
  typename V::F acc[R][T];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < T; j++) acc[i][j] = V::zeroF();
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* blk = panel + b * BS;
    for (int h = 0; h < H; h++) {
      typename V::I s[R][T];
      for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) s[i][j] = V::zero();
      for (int k = h * K; k < (h + 1) * K; k++) {
        typename V::I w[R];
        for (int i = 0; i < R; i++) w[i] = V::load(blk + i * gs + k * 4 * L);
        for (int j = 0; j < T; j++) {
          const typename V::I x = V::bcast4(xq[j] + b * 32 + 4 * k);
          for (int i = 0; i < R; i++) {
            if constexpr (lk::signedQuant(QT) && !kPanelVnni) s[i][j] = V::dotSigned(s[i][j], w[i], x);
            else s[i][j] = V::dot(s[i][j], w[i], x);
          }
        }
      }
      const int64_t sumAt = H == 2 ? lk::ds16Index(b, h) : b;
      for (int i = 0; i < R; i++) {
        const float* scale = reinterpret_cast<const float*>(blk + i * gs + 32 * L) + h * L;
        const typename V::F sc = V::loadF(scale);
        for (int j = 0; j < T; j++)
          acc[i][j] = V::fmadd(V::cvt(s[i][j]), V::mul(sc, V::set1(xd[j][b])), acc[i][j]);
        if constexpr (panelOffset(QT)) {
          const typename V::F off = V::loadF(scale + H * L);
          for (int j = 0; j < T; j++) acc[i][j] = V::fnmadd(off, V::set1(xsum[j][sumAt]), acc[i][j]);
        }
      }
    }
  }
  for (int i = 0; i < R; i++) {
    const int64_t p0 = int64_t(i) * L;
    if (p0 >= n) break;
    for (int j = 0; j < T; j++) {
      float* o = a.out + (t + j) * a.rows + r0 + p0;
      typename V::F v = acc[i][j];
      if (p0 + L <= n) {
        if (a.bias) v = V::add(v, V::loadF(a.bias + r0 + p0));
        V::store(o, v);
      } else {
        alignas(64) float tmp[L];
        V::store(tmp, v);
        for (int64_t l = 0; l < n - p0; l++) o[l] = tmp[l] + (a.bias ? a.bias[r0 + p0 + l] : 0.0f);
      }
    }
  }
}

template <int QT, int T>
void panelTokens(const QuantMatmulArgs& a, const uint8_t* panel, int64_t r0, int64_t n, int64_t t, int64_t left) {
  if constexpr (T > 0) {
    if (left == T) return panelTile<QT, T>(a, panel, r0, n, t);
    return panelTokens<QT, T - 1>(a, panel, r0, n, t, left);
  }
}

// Rows [r0, r1) for every token, a panel at a time; the panel lives in a per-thread buffer that
// grows to the largest panel once.
template <int QT>
void panelRange(const QuantMatmulArgs& a, int64_t r0, int64_t r1) {
  using V = PanelLanes;
  thread_local std::vector<uint8_t> buffer;
  const size_t need = size_t(V::R * (a.cols / 32) * panelBlockStride(QT));
  if (buffer.size() < need) buffer.resize(need);
  uint8_t* panel = buffer.data();
  for (int64_t r = r0; r < r1; r += kPanelRows) {
    const int64_t n = std::min(kPanelRows, r1 - r);
    packPanel<QT>(a, r, n, panel);
    int64_t t = 0;
    for (; t + V::T <= a.nTokens; t += V::T) panelTile<QT, V::T>(a, panel, r, n, t);
    if (t < a.nTokens) panelTokens<QT, V::T - 1>(a, panel, r, n, t, a.nTokens - t);
  }
}
