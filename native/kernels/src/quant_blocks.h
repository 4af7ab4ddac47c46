// The ggml block formats as plain C++, shared by every quantized variant: each format's scales,
// mins and offsets, a block's values as integers, the scalar quantization of activation rows, and
// the prefetch of a stream's lines ahead. Included by quant_kernels.cpp inside its variant namespace.
#pragma once

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
