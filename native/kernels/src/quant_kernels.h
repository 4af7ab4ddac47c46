// Products with weights kept in ggml's block formats (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS). The activations are
// quantized per 32 values to int8 first (the activation rows below), so each 32-value block is one
// integer dot product of bytes, scaled once in float: the weights are read from memory at their
// stored size (4.5 to 8.5 bits a value) and never widened to floats.
//
// quant_kernels.cpp is compiled once per variant (portable, avx2, avx512, and the integer-dot
// variants avx2vnni and avx512vnni, which need only AVX-VNNI or AVX-512 VNNI on top) into its own
// namespace; each exposes a QuantTable. quant_select.cpp picks one at run time. Nothing here uses
// target-specific code: this header is shared by all of them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lk {

// The addon's codes for the block formats (src/kernels/native.ts has the same table).
enum QuantType : int {
  kQ8_0 = 0,
  kQ4_0 = 1,
  kQ4_K = 2,
  kQ6_K = 3,
  kQ4_1 = 4,
  kQ5_0 = 5,
  kQ5_1 = 6,
  kQ5_K = 7,
  kQ3_K = 8,
  kQ2_K = 9,
  kIQ4_NL = 10,
  kIQ4_XS = 11,
  kMXFP4 = 12,
  kQuantTypes = 13
};

// Values per block and bytes per block, by QuantType.
struct QuantFormat {
  const char* name;
  int64_t block;
  int64_t bytes;
};
constexpr QuantFormat kQuantFormats[kQuantTypes] = {
    {"q8_0", 32, 34}, {"q4_0", 32, 18}, {"q4_k", 256, 144}, {"q6_k", 256, 210},
    {"q4_1", 32, 20}, {"q5_0", 32, 22}, {"q5_1", 32, 24}, {"q5_k", 256, 176}, {"q3_k", 256, 110}, {"q2_k", 256, 84}, {"iq4_nl", 32, 18}, {"iq4_xs", 256, 136}, {"mxfp4", 32, 17}};
// IQ4_NL's 16 levels (its nibbles index them; IQ4_XS's too).
constexpr int8_t kIq4nlLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
// MXFP4's 16 levels: the e2m1 values doubled (its scale is 2^(e − 128), half the E8M0 scale).
constexpr int8_t kMxfp4Levels[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
// MXFP4's E8M0 byte as the scale of its doubled levels: 2^(e − 128) (subnormal for e < 2).
inline float e8m0Half(uint8_t e) {
  const uint32_t bits = e < 2 ? 0x00200000u << e : uint32_t(e - 1) << 23;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}
// Where a 32-value block's nibbles and fifth bits (a little-endian u32) start.
constexpr int64_t nibblesAt(int qt) {
  return qt == kMXFP4 ? 1 : qt == kQ4_0 || qt == kIQ4_NL ? 2 : qt == kQ4_1 ? 4 : qt == kQ5_0 ? 6 : 8;
}
constexpr int64_t fifthBitsAt(int qt) { return qt == kQ5_0 ? 2 : 4; }
// Formats whose decoded values are signed bytes (the others are unsigned with an offset).
constexpr bool signedQuant(int qt) { return qt == kQ8_0 || qt == kIQ4_NL || qt == kIQ4_XS || qt == kMXFP4; }
// K-quants: one 256-value super-block a group; the others are 32-value blocks, eight a group.
constexpr bool isSuperBlock(int qt) {
  return qt == kQ4_K || qt == kQ6_K || qt == kQ5_K || qt == kQ3_K || qt == kQ2_K || qt == kIQ4_XS;
}

// A token's activations quantized per 32 values: x ≈ d * q with d = max|x| / 127 and q = x / d
// rounded to nearest (even). Laid out per token as floats then bytes (actStride(cols) bytes):
//   d[nb]      one scale per 32-value block (nb = cols / 32)
//   ds32[nb]   d times the sum of q over each block (the batched products' offsets and mins)
//   ds16[16ng] d times the sum of q over each 16-value half, in kernel order (ds16Index), for
//              ng = nb / 8 rounded up groups of 8 blocks: the formats that store an offset
//              (Q4_0's 8, Q5_0's 16, Q3_K's 4, Q6_K's 32) or a min (Q2_K, Q4_K, Q5_K, Q4_1, Q5_1) correct for it with these instead of
//              per-value arithmetic
//   q[cols]    int8
inline int64_t actFloats(int64_t cols) { return 2 * (cols / 32) + (cols / 32 + 7) / 8 * 16; }
inline int64_t actStride(int64_t cols) { return actFloats(cols) * 4 + cols; }
inline const float* actD(const uint8_t* row) { return reinterpret_cast<const float*>(row); }
inline const float* actDs32(const uint8_t* row, int64_t cols) { return actD(row) + cols / 32; }
inline const float* actDs16(const uint8_t* row, int64_t cols) { return actD(row) + 2 * (cols / 32); }
inline const int8_t* actQ(const uint8_t* row, int64_t cols) {
  return reinterpret_cast<const int8_t*>(row + actFloats(cols) * 4);
}
// Where half h (0: values 0-15, 1: 16-31) of block b sits in ds16: groups of 8 blocks as
// [lo 0-3, hi 0-3, lo 4-7, hi 4-7], the order the kernels' reduction leaves the half sums in.
inline int64_t ds16Index(int64_t b, int h) {
  const int64_t j = b % 8;
  return (b / 8) * 16 + (j < 4 ? j : 4 + j) + 4 * h;
}

// IQ4_XS's eight six-bit scales as stored (0..63; the value is ls − 32): the low four bits in the
// nibbles of bytes 4-7 (block b in byte 4 + b / 2, high nibble for odd b), the top two at bits 2·b
// of the u16 at byte 2.
inline int iq4xsScale(const uint8_t* g, int b) {
  const int high = ((g[2] | (g[3] << 8)) >> (2 * b)) & 3;
  return ((g[4 + b / 2] >> (4 * (b % 2))) & 15) | (high << 4);
}

// Q3_K's 16 six-bit scales as stored (0..63; the value is sc − 32) from its 12 packed bytes: the low
// four bits of scale i in byte i (i < 8) or the high nibble of byte i − 8, the top two at bits
// 2·(i / 4) of byte 8 + i % 4.
inline void q3kScales(const uint8_t* s, int* sc) {
  for (int i = 0; i < 16; i++) {
    const int low = i < 8 ? s[i] & 15 : s[i - 8] >> 4;
    sc[i] = low | (((s[8 + i % 4] >> (2 * (i / 4))) & 3) << 4);
  }
}

struct QuantMatmulArgs {
  float* out;           // [nTokens, rows]
  const uint8_t* xq;    // nTokens rows of actStride(cols) bytes
  const uint8_t* w;     // rows of cols / block blocks each
  int qtype;
  int64_t rows;
  int64_t cols;
  int64_t nTokens;
  const float* bias;    // [rows] or null
};

struct QuantTable {
  const char* name;
  // Token rows [t0, t1) of x [nTokens, cols] into dst (actStride(cols) bytes a token); cols % 32 == 0.
  void (*quantizeActs)(uint8_t* dst, const float* x, int64_t cols, int64_t t0, int64_t t1);
  // Output rows [r0, r1) for every token.
  void (*matmul)(const QuantMatmulArgs& a, int64_t r0, int64_t r1);
  // By QuantType: the smallest batch the batched kernel takes (it decodes the weights into panels
  // once per call first); matmul runs a smaller one as the matrix-vector path reads weights, the
  // row paths taking its tokens at once where they can, else one at a time.
  int64_t batchFrom[kQuantTypes];
  // Row groups [g0, g1) of a matrix packed with 16 rows in the lanes (quant_pack.h; the packable
  // formats), or null where the variant has no such path; it takes batches under packedTo tokens.
  void (*matmulPacked)(const QuantMatmulArgs& a, const uint8_t* packed, int64_t g0, int64_t g1);
  int64_t packedTo;
};

const QuantTable* quant_table_portable();
#if defined(__x86_64__) || defined(_M_X64)
const QuantTable* quant_table_avx2();
const QuantTable* quant_table_avx2vnni();
const QuantTable* quant_table_avx512();
const QuantTable* quant_table_avx512vnni();
#endif

// Variants this CPU can run, best first (for tests and benchmarks).
std::vector<std::string> supportedQuantVariants();
// The table for a name, or null if unknown or not supported here.
const QuantTable* quantTable(const std::string& name);
// The quantized kernels that go with a main kernel variant: its integer-dot flavour where the CPU
// has VNNI (avx512 -> avx512vnni, avx2 -> avx2vnni), else the variant itself.
const QuantTable* quantTableFor(const std::string& mainVariant);

// Row `row` of a quantized matrix [*, cols] dequantized to floats, as ggml computes each value
// (embedding lookups: a few rows per step, so plain scalar code).
void dequantRow(float* out, const uint8_t* w, int qtype, int64_t cols, int64_t row);

}  // namespace lk
