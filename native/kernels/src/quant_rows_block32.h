// The row path on 512-bit vectors for the 32-value block formats (rowsBlock32: Q8_0, Q4_0, Q4_1,
// Q5_0, Q5_1, IQ4_NL, MXFP4) and for IQ4_XS (rowsIQ4XS, VNNI builds). Included by quant_kernels.cpp
// inside its variant namespace, after quant_rows_zmm.h.
#pragma once

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
