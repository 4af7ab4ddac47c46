// The quantized products, compiled once per variant (see quant_kernels.h and binding.gyp).
//
// A row's product with a token walks the weights in groups of 256 values (one K-quant super-block,
// or eight Q8_0/Q4_0 blocks): each 32-value block is decoded to 32 bytes (Q8_0: its magnitudes,
// the signs moved onto the activations) and dotted with the token's int8 activations, 8 int32
// lanes of 4 products each. One tree of horizontal adds turns the group's 8 dot vectors into its 16
// half-block sums, so the scales are applied as two float vectors per group: the weight side (the
// block's scales, decoded once per row and group for all tokens of the tile) times the
// activations' scales. A format's offset or min is two more FMAs against the activations'
// precomputed d·Σq of each half. Batches of tokens go to the panels of quant_panel.h instead, and
// one token on Q4_K to rowsQ4K (AVX-512) or rowQ4K (AVX2, AVX-VNNI).
//
// This file holds the activation rows' quantization and the choice among paths; the paths are
// headers it includes inside the variant's namespace: the formats in scalar code (quant_blocks.h),
// the 256-bit tiles (quant_tile_ymm.h), the batched panels (quant_panel.h), the 512-bit row paths
// (quant_rows_zmm.h, quant_rows_block32.h, quant_rows_halves.h, and on packed weights
// quant_packed_rows.h) and the 256-bit ones (quant_row_ymm.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "quant_kernels.h"
#include "quant_pack.h"

#if defined(__AVX2__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

#ifndef LK_VARIANT
#error "compile with -DLK_VARIANT=<portable|avx2|avx2vnni|avx512|avx512vnni>"
#endif

namespace LK_VARIANT {
namespace {

using lk::QuantMatmulArgs;

#include "quant_blocks.h"

#if defined(__AVX2__)

#include "quant_tile_ymm.h"

#include "quant_panel.h"

#if defined(__AVX512F__) && defined(__AVX512BW__)
#define LK_ROW_Q4K_512 1

#include "quant_rows_zmm.h"
#include "quant_rows_block32.h"
#include "quant_rows_halves.h"

#else

#include "quant_row_ymm.h"
#endif

#else  // portable: the same arithmetic in scalar code

inline void quantizeBlocks(const float* x, int64_t cols, uint8_t* row, int64_t b0, int64_t b1) {
  quantizeBlocksScalar(x, cols, row, b0, b1);
}

template <int QT, int R, int T>
inline void tile(const QuantMatmulArgs& a, int64_t r, int64_t rs, int64_t t) {
  const bool k = lk::isSuperBlock(QT);
  const int64_t nb = a.cols / 32, rowBytes = a.cols / (k ? 256 : 32) * blockBytes(QT);
  for (int i = 0; i < R; i++) {
    const int64_t row = r + i * rs;
    for (int j = 0; j < T; j++) {
      const uint8_t* x = a.xq + (t + j) * lk::actStride(a.cols);
      const int8_t* xq = lk::actQ(x, a.cols);
      const float* s16 = lk::actDs16(x, a.cols);
      float acc = 0.0f;
      for (int64_t b0 = 0; b0 < nb; b0 += 8) {
        // A group of up to 8 blocks: one K super-block, or Q8_0/Q4_0 blocks b0..b0+7.
        const uint8_t* g = a.w + row * rowBytes + (k ? (b0 / 8) * blockBytes(QT) : b0 * blockBytes(QT));
        const int n = int(std::min<int64_t>(8, nb - b0));
        GroupScales s;
        if (k || n == 8) groupScales(QT, g, s);
        else
          for (int b = 0; b < n; b++) {
            float d, off;
            blockScale(QT, g + b * blockBytes(QT), d, off);
            s.lo[b] = s.hi[b] = d;
            s.offLo[b] = s.offHi[b] = off;
          }
        for (int b = 0; b < n; b++) {
          int32_t v[32];
          blockInts<QT>(g, b, v);
          int32_t lo = 0, hi = 0;
          for (int e = 0; e < 16; e++) lo += v[e] * xq[(b0 + b) * 32 + e];
          for (int e = 16; e < 32; e++) hi += v[e] * xq[(b0 + b) * 32 + e];
          const float dx = lk::actD(x)[b0 + b];
          acc += dx * (s.lo[b] * float(lo) + s.hi[b] * float(hi)) - s.offLo[b] * s16[lk::ds16Index(b0 + b, 0)] -
                 s.offHi[b] * s16[lk::ds16Index(b0 + b, 1)];
        }
      }
      a.out[(t + j) * a.rows + row] = acc + (a.bias ? a.bias[row] : 0.0f);
    }
  }
}

#endif

void quantizeActs(uint8_t* dst, const float* x, int64_t cols, int64_t t0, int64_t t1) {
  const int64_t xs = lk::actStride(cols);
  for (int64_t t = t0; t < t1; t++) {
    uint8_t* row = dst + t * xs;
    // Unused ds16 slots of a last partial group stay defined.
    std::fill(reinterpret_cast<float*>(row), reinterpret_cast<float*>(row) + lk::actFloats(cols), 0.0f);
    quantizeBlocks(x + t * cols, cols, row, 0, cols / 32);
  }
}

// A small batch's tokens go against each row (or group of rows) in chunks of up to kChunkTokens,
// the row decoded once a chunk. On the 512-bit row paths one row and four tokens measured best at
// batches 2 and 4 for Q4_K and Q6_K (4096x4096, two threads) against two rows of two or four
// tokens, four rows of two, and one row of eight, whose accumulators no longer fit the registers.
constexpr int kChunkTokens = 4;

// Tokens [t, nTokens) of a small batch against the same rows, in chunks of T, then T / 2, ... 1:
// kernel(T, t0) for each (a chunk after the first finds the rows in L1).
template <int T, typename Kernel>
inline void inTokenChunks(int64_t t, int64_t nTokens, Kernel kernel) {
  for (; t + T <= nTokens; t += T) kernel(std::integral_constant<int, T>{}, t);
  if constexpr (T > 1) inTokenChunks<T / 2>(t, nTokens, kernel);
}

#if defined(__AVX2__)
// Rows [r0, r1) of one token as S sequential streams a slice's S-th apart: kernel(N, rows) gets
// rows r, r + q, ... (N = S) while whole streams last, then each row left over alone (N = 1).
template <int S, typename Kernel>
inline void inStreams(int64_t r0, int64_t r1, Kernel kernel) {
  const int64_t q = (r1 - r0) / S;
  int64_t r = r0;
  for (; r < r0 + q; r++) {
    int64_t rows[S];
    for (int i = 0; i < S; i++) rows[i] = r + i * q;
    kernel(std::integral_constant<int, S>{}, rows);
  }
  for (r = r0 + S * q; r < r1; r++) kernel(std::integral_constant<int, 1>{}, &r);
}

#if defined(LK_ROW_Q4K_512)
// A small batch on a 512-bit row path: kernel(T, &row, t0) for each row and chunk of tokens. The
// rows go in groups of about 16 KiB, each group's rows against one chunk after another: a chunk's
// activations (4 KiB a token of 4096 values, and their scales) and the group's rows stay in L1
// together, where two chunks' activations against one row at a time pushed the rows out.
template <int QT, typename Kernel>
inline void smallBatch(const QuantMatmulArgs& a, int64_t r0, int64_t r1, Kernel kernel) {
  const int64_t rowBytes = a.cols / (lk::isSuperBlock(QT) ? 256 : 32) * blockBytes(QT);
  const int64_t group = std::max<int64_t>(1, (int64_t(16) << 10) / rowBytes);
  for (int64_t g = r0; g < r1; g += group) {
    const int64_t g1 = std::min(r1, g + group);
    inTokenChunks<kChunkTokens>(0, a.nTokens, [&](auto t, int64_t t0) {
      for (int64_t r = g; r < g1; r++) kernel(t, &r, t0);
    });
  }
}
#endif

#include "quant_packed_rows.h"

// The tokens' int8 activations reordered once per call for a row path (cols bytes a token), in a
// per-thread buffer that grows to the widest batch once.
inline const int8_t* orderedActs(const QuantMatmulArgs& a, void (*order)(const int8_t*, int64_t, int8_t*)) {
  thread_local std::vector<int8_t> buf;
  if (buf.size() < size_t(a.cols * a.nTokens)) buf.resize(size_t(a.cols * a.nTokens));
  for (int64_t t = 0; t < a.nTokens; t++)
    order(lk::actQ(a.xq + t * lk::actStride(a.cols), a.cols), a.cols, buf.data() + t * a.cols);
  return buf.data();
}
#endif

// Rows [r0, r1): a batch of at least kPanelFrom tokens runs the panels (quant_panel.h); a smaller
// one the row paths, the 512-bit ones and the lane-sum tile with its tokens in chunks of four
// against each row (decoded once a chunk), the AVX2 builds' Q4_K and IQ4_XS a token at a time. One
// token on AVX-512 Q4_K reads four rows a quarter of the range apart (rowsQ4K), on AVX2 Q4_K one
// row after another (rowQ4K); with the lane-sum tile it reads the rows one after another, one
// sequential stream (four streams, as the float matvec reads them, measured 2-4x slower from DRAM
// with this tile: its decoding, not the bytes, sets the pace, and four rows' worth of it between
// one stream's loads left the loads late). Without AVX2 a batch takes two rows at a time against
// four tokens, so each decoded group serves eight dot products.
template <int QT>
void matmulRange(const QuantMatmulArgs& a, int64_t r0, int64_t r1);

// A small batch on a row path that takes one token: the rows [r0, r1) once a token (they stay in
// the cache between tokens when the slice is small).
template <int QT>
void eachToken(const QuantMatmulArgs& a, int64_t r0, int64_t r1) {
  for (int64_t t = 0; t < a.nTokens; t++) {
    QuantMatmulArgs one = a;
    one.xq = a.xq + t * lk::actStride(a.cols);
    one.out = a.out + t * a.rows;
    one.nTokens = 1;
    matmulRange<QT>(one, r0, r1);
  }
}

template <int QT>
void matmulRange(const QuantMatmulArgs& a, int64_t r0, int64_t r1) {
#if defined(__AVX2__)
  if (a.nTokens >= kPanelFrom[QT]) return panelRange<QT>(a, r0, r1);
#if defined(LK_ROW_Q4K_512)
#if defined(__AVX512VNNI__)
  constexpr bool kRows32 = nibbleBlock(QT) || QT == lk::kIQ4_NL || QT == lk::kMXFP4;
#else
  constexpr bool kRows32 = nibbleBlock(QT);  // IQ4_NL's lifted levels would saturate vpmaddubsw
#endif
  if constexpr (kRows32) {
    const int8_t* xo = orderedActs(a, block32Order);
    if (a.nTokens > 1)
      return smallBatch<QT>(a, r0, r1, [&](auto t, const int64_t* rows, int64_t t0) {
        rowsBlock32<QT, 1, decltype(t)::value>(a, xo, rows, t0);
      });
    return inStreams<4>(r0, r1, [&](auto n, const int64_t* rows) { rowsBlock32<QT, decltype(n)::value>(a, xo, rows); });
  }
  if constexpr (QT == lk::kQ4_K || QT == lk::kQ5_K) {
    const int8_t* xo = orderedActs(a, q4kOrder);
    if (a.nTokens > 1)
      return smallBatch<QT>(a, r0, r1, [&](auto t, const int64_t* rows, int64_t t0) {
        rowsQ4K<QT, 1, decltype(t)::value>(a, xo, rows, t0);
      });
    // Q5_K's bits take the registers four rows' state would need: two streams, half the slice apart.
    constexpr int S = QT == lk::kQ5_K ? 2 : 4;
    return inStreams<S>(r0, r1, [&](auto n, const int64_t* rows) { rowsQ4K<QT, decltype(n)::value>(a, xo, rows); });
  }
  if constexpr (QT == lk::kQ6_K || QT == lk::kQ3_K || QT == lk::kQ2_K) {
    if (a.nTokens > 1)
      return smallBatch<QT>(a, r0, r1, [&](auto t, const int64_t* rows, int64_t t0) {
        rowsHalves<QT, 1, decltype(t)::value>(a, rows, t0);
      });
    // Q3_K's third bits take the registers four rows' state would need: two streams, half the
    // slice apart (four: 25-27% of the streaming read on two threads, two: 48-51%, one: 44-45%).
    constexpr int S = QT == lk::kQ3_K ? 2 : 4;
    return inStreams<S>(r0, r1, [&](auto n, const int64_t* rows) { rowsHalves<QT, decltype(n)::value>(a, rows); });
  }
#if defined(__AVX512VNNI__)
  if constexpr (QT == lk::kIQ4_XS) {
    const int8_t* xo = orderedActs(a, iq4xsOrder);
    if (a.nTokens > 1)
      return smallBatch<QT>(a, r0, r1, [&](auto t, const int64_t* rows, int64_t t0) {
        rowsIQ4XS<1, decltype(t)::value>(a, xo, rows, t0);
      });
    return inStreams<4>(r0, r1, [&](auto n, const int64_t* rows) { rowsIQ4XS<decltype(n)::value>(a, xo, rows); });
  }
#endif
#else
  if constexpr (QT == lk::kQ4_K) {
    if (a.nTokens > 1) return eachToken<QT>(a, r0, r1);
    for (int64_t r = r0; r < r1; r++) rowQ4K(a, r);
    return;
  }
  if constexpr (QT == lk::kIQ4_XS) {
    if (a.nTokens > 1) return eachToken<QT>(a, r0, r1);
    const int8_t* xo = orderedActs(a, iq4xsOrder);
    for (int64_t r = r0; r < r1; r++) rowIQ4XS(a, xo, r);
    return;
  }
#endif
  // The lane-sum tile, one row at a time; a small batch's tokens in chunks against the row.
  for (int64_t r = r0; r < r1; r++)
    inTokenChunks<kChunkTokens>(0, a.nTokens, [&](auto t, int64_t t0) { tile<QT, 1, decltype(t)::value>(a, r, 1, t0); });
#else
  if (a.nTokens == 1) {
    for (int64_t r = r0; r < r1; r++) tile<QT, 1, 1>(a, r, 1, 0);
    return;
  }
  auto tokens = [&](auto rowsTag, int64_t r) {
    inTokenChunks<kChunkTokens>(0, a.nTokens, [&](auto t, int64_t t0) {
      tile<QT, decltype(rowsTag)::value, decltype(t)::value>(a, r, 1, t0);
    });
  };
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) tokens(std::integral_constant<int, 2>{}, r);
  if (r < r1) tokens(std::integral_constant<int, 1>{}, r);
#endif
}

#if defined(LK_PACKED_ROWS)
// Row groups [g0, g1) of a matrix packed with 16 rows in the lanes (quant_pack.h; a packable format,
// which the caller checks), a batch under the table's packedTo.
void matmulPacked(const QuantMatmulArgs& a, const uint8_t* packed, int64_t g0, int64_t g1) {
  switch (a.qtype) {
    case lk::kQ8_0:
      return packedGroups<lk::kQ8_0>(a, packed, g0, g1);
    case lk::kQ4_0:
      return packedGroups<lk::kQ4_0>(a, packed, g0, g1);
    case lk::kQ4_1:
      return packedGroups<lk::kQ4_1>(a, packed, g0, g1);
    case lk::kQ5_1:
      return packedGroups<lk::kQ5_1>(a, packed, g0, g1);
    case lk::kIQ4_NL:
      return packedGroups<lk::kIQ4_NL>(a, packed, g0, g1);
    default:
      return packedGroups<lk::kQ5_0>(a, packed, g0, g1);
  }
}
#endif

void matmul(const QuantMatmulArgs& a, int64_t r0, int64_t r1) {
  switch (a.qtype) {
    case lk::kQ8_0:
      return matmulRange<lk::kQ8_0>(a, r0, r1);
    case lk::kQ4_0:
      return matmulRange<lk::kQ4_0>(a, r0, r1);
    case lk::kQ4_K:
      return matmulRange<lk::kQ4_K>(a, r0, r1);
    case lk::kQ4_1:
      return matmulRange<lk::kQ4_1>(a, r0, r1);
    case lk::kQ5_0:
      return matmulRange<lk::kQ5_0>(a, r0, r1);
    case lk::kQ5_1:
      return matmulRange<lk::kQ5_1>(a, r0, r1);
    case lk::kQ5_K:
      return matmulRange<lk::kQ5_K>(a, r0, r1);
    case lk::kQ3_K:
      return matmulRange<lk::kQ3_K>(a, r0, r1);
    case lk::kQ2_K:
      return matmulRange<lk::kQ2_K>(a, r0, r1);
    case lk::kIQ4_NL:
      return matmulRange<lk::kIQ4_NL>(a, r0, r1);
    case lk::kIQ4_XS:
      return matmulRange<lk::kIQ4_XS>(a, r0, r1);
    case lk::kMXFP4:
      return matmulRange<lk::kMXFP4>(a, r0, r1);
    default:
      return matmulRange<lk::kQ6_K>(a, r0, r1);
  }
}

}  // namespace
}  // namespace LK_VARIANT

namespace lk {

#define LK_QCAT2(a, b) a##b
#define LK_QCAT(a, b) LK_QCAT2(a, b)
#define LK_QSTR2(a) #a
#define LK_QSTR(a) LK_QSTR2(a)

const QuantTable* LK_QCAT(quant_table_, LK_VARIANT)() {
#if defined(__AVX2__)
  static const QuantTable table = {LK_QSTR(LK_VARIANT), LK_VARIANT::quantizeActs, LK_VARIANT::matmul,
                                   {LK_VARIANT::kPanelFrom[0], LK_VARIANT::kPanelFrom[1], LK_VARIANT::kPanelFrom[2],
                                    LK_VARIANT::kPanelFrom[3], LK_VARIANT::kPanelFrom[4], LK_VARIANT::kPanelFrom[5],
                                    LK_VARIANT::kPanelFrom[6], LK_VARIANT::kPanelFrom[7], LK_VARIANT::kPanelFrom[8],
                                    LK_VARIANT::kPanelFrom[9], LK_VARIANT::kPanelFrom[10], LK_VARIANT::kPanelFrom[11],
                                    LK_VARIANT::kPanelFrom[12]},
#if defined(LK_PACKED_ROWS)
                                   LK_VARIANT::matmulPacked, LK_VARIANT::kPackedTo};
#else
                                   nullptr, 0};
#endif
#else
  // The scalar tile takes a batch at any size.
  static const QuantTable table = {LK_QSTR(LK_VARIANT), LK_VARIANT::quantizeActs, LK_VARIANT::matmul, {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}, nullptr, 0};
#endif
  return &table;
}

}  // namespace lk
