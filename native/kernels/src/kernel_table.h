// The interface between the Node-API layer and one compiled variant of the kernels.
// Every variant (portable, avx2, avx512, avx512bf16, amxbf16) is the same source compiled with different target flags
// into its own namespace; each exposes a KernelTable. Kernels work on a sub-range of rows/tasks
// so the thread pool in the addon layer decides how work is split; kernels never allocate except
// for per-thread scratch that grows once.
#pragma once
#include <cstdint>
#include <cstring>

namespace lk {

// kI8: the KV cache only (kv_int8.h): int8 rows with an f32 scale per token and KV head.
enum DType : int { kF32 = 0, kF16 = 1, kBF16 = 2, kI8 = 3 };

struct MatmulArgs {
  float* out;         // [nTokens, rows]
  const float* x;     // [nTokens, cols]
  const void* w;      // [rows, cols] in dtype
  int dtype;
  int64_t rows;
  int64_t cols;
  int64_t nTokens;
  const float* bias;  // [rows] or null
  // Batches that takesPacked (below) accepts: x packed by packTokens; null otherwise.
  const float* xt;
  // Whether products of up to kSmallBatch tokens ask for their weight rows ahead in software
  // (lk::readAhead(): Intel CPUs).
  bool readAhead;
};

// Batches up to this many tokens stream the weights (four-stream dot-product tiles); larger ones
// run outer-product tiles over activations packed k-major in groups of kTokenGroup tokens:
// group g holds x[g * kTokenGroup + j][k] at xt[(g * cols + k) * kTokenGroup + j], with the last
// group's missing tokens zero. The addon packs once per call, before the row slices run.
constexpr int64_t kSmallBatch = 8;
constexpr int64_t kTokenGroup = 32;
inline int64_t tokenGroups(int64_t nTokens) { return (nTokens + kTokenGroup - 1) / kTokenGroup; }

struct KvArgs {
  void* k;  // cache, block-major: ((block * nKvHeads + h) * blockSize + off) * headDim + i
  void* v;  // the same, except int8 (see kv_int8.h: tokens interleaved in groups of kI8Group)
  int dtype;
  int64_t blockSize;
  int64_t nKvHeads;
  int64_t headDim;
  // int8 only: the scale of each (token, KV head) row, at (block * nKvHeads + h) * blockSize + off.
  float* kScale = nullptr;
  float* vScale = nullptr;
};

// int8 V rows are stored in groups of this many tokens of a block, interleaved element by element
// (kv_int8.h), so integer dot products can sum over keys; int8 caches need blockSize % kI8Group == 0.
constexpr int64_t kI8Group = 4;

struct AttnArgs {
  float* out;
  const float* q;
  KvArgs cache;
  const int32_t* blockTables;
  int64_t maxBlocksPerSeq;
  const int32_t* qSeq;
  const int32_t* ctxStart;
  const int32_t* ctxEnd;
  int64_t nHeads;
  float scale;
  float* lse;  // or null
  float softcap;  // scores become softcap * tanh(score / softcap) before the softmax; 0: none
  // Whether decode attention on a float cache asks for its KV rows ahead in software (read_ahead.h;
  // lk::readAhead() says whether this CPU gains by it), and where it multiplies a bf16 cache through
  // vdpbf16ps (lk::readAheadBf16Dot()). The int8 dot-product paths always do.
  bool readAhead;
  bool readAheadBf16Dot;
};

// Prompt tiles (attentionTile): a tile's rows are its tokens' query heads of one KV head, at most
// kTileRows; runs of fewer than kTileMinTokens tokens (decode, speculative drafts) keep the
// per-token kernel, so a sequence decodes alike whether or not it speculates.
constexpr int64_t kTileRows = 64, kTileMaxHeadDim = 256, kTileMinTokens = 8;

// Tokens a tile takes for query groups of `group` heads.
inline int64_t tileTokens(int64_t group) { return group >= kTileRows ? 1 : kTileRows / group; }

// n bytes at p summed as little-endian 64-bit words, modulo 2^64 (a last partial word zero-extended):
// what the read-pattern yardstick (KernelTable::attentionLoads) does with each row it reads, so its
// reads cannot be dropped and a test can check that every row was read once.
inline uint64_t sumWords(const void* p, int64_t n) {
  uint64_t x = 0;
  int64_t b = 0;
  for (; b + 8 <= n; b += 8) {
    uint64_t w;
    std::memcpy(&w, static_cast<const char*>(p) + b, 8);
    x += w;
  }
  if (b < n) {
    uint64_t w = 0;
    std::memcpy(&w, static_cast<const char*>(p) + b, size_t(n - b));
    x += w;
  }
  return x;
}

struct KernelTable {
  const char* name;
  // Float lanes per vector (4, 8 or 16).
  int lanes;
  // out rows [r0, r1) for every token.
  void (*matmul)(const MatmulArgs& a, int64_t r0, int64_t r1);
  // Token groups [g0, g1) of x [nTokens, cols] into the packed layout MatmulArgs::xt takes for
  // weights of `dtype` (a variant may pack differently per dtype, within the same space).
  void (*packTokens)(float* xt, const float* x, int64_t nTokens, int64_t cols, int64_t g0, int64_t g1, int dtype);
  void (*embedding)(float* out, const void* table, int dtype, int64_t dim, const int32_t* tokens, int64_t t0,
                    int64_t t1);
  void (*rmsnorm)(float* out, const float* x, const float* w, int64_t dim, float eps, int64_t t0, int64_t t1);
  // Rotates the first `rotaryDim` dims of each head (pairs i, i + rotaryDim / 2), the rest as they are.
  void (*rope)(float* x, const int32_t* pos, int64_t nHeads, int64_t headDim, int64_t rotaryDim, const float* cos,
               const float* sin, int64_t t0, int64_t t1);
  void (*siluMul)(float* out, const float* g, const float* u, int64_t i0, int64_t i1);
  void (*add)(float* out, const float* a, const float* b, int64_t i0, int64_t i1);
  // Softmax (or log-softmax) of scale * x over rows [r0, r1), scale > 0; out may alias x.
  void (*softmax)(float* out, const float* x, int64_t dim, bool log, float scale, int64_t r0, int64_t r1);
  void (*kvWrite)(const KvArgs& c, const float* k, const float* v, const int32_t* slots, int64_t t0, int64_t t1);
  // Query token t's heads of KV heads [h0, h1) (G = nHeads / nKvHeads query heads each) against
  // its keys [p0, p1): writes the normalised output of the task's query head g to
  // out[g * headDim ...] and, if lse is not null, the natural-log sum of exp(scores) to lse[g]
  // (-inf for an empty range). A long context split into parts over threads is merged afterwards
  // from these (flash-decoding).
  void (*attention)(const AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1, float* out,
                    float* lse);
  // Query tokens [t0, t1) of one sequence, a prompt run (AttentionRunner::runTiles), against KV
  // head kh: writes their outputs and lse straight into a.out / a.lse; only for calls tileFits
  // accepts.
  void (*attentionTile)(const AttnArgs& a, int64_t t0, int64_t t1, int64_t kh);
  void (*merge)(float* outA, float* lseA, const float* outB, const float* lseB, int64_t headDim, int64_t r0,
                int64_t r1);
  // Sum of x[i0, i1): a pure streaming read, the bandwidth yardstick for benchmarks.
  double (*streamSum)(const float* x, int64_t i0, int64_t i1);
  // n rounds of independent FMA chains (20 * W flops a round): the arithmetic yardstick.
  double (*fmaLoop)(int64_t n);
  // n rounds of independent bf16 dot-product chains (dotFlopsPerRound flops a round), the
  // arithmetic yardstick of the bf16 products; null where the variant has no such instruction.
  double (*dotLoop)(int64_t n);
  double dotFlopsPerRound;
  // The path int8 KV attention takes on this CPU: an integer dot-product instruction set
  // ("avx512vnni", "avxvnni") or "widen" (int8 widened to fp32).
  const char* (*int8Attention)();
  // Whether grouped-query attention on a bf16 cache multiplies through bf16 dot products
  // (vdpbf16ps: queries and probabilities rounded to bf16) rather than widening K and V to fp32.
  bool bf16DotAttention;
  // n rounds of independent AMX tile dot-product chains (tileFlopsPerRound flops a round), the
  // arithmetic yardstick of the tiled bf16 products; null where the variant has no tiles.
  double (*tileLoop)(int64_t n);
  double tileFlopsPerRound;
  // Element-wise activations over [i0, i1) (activation_kernels.h): out = gelu_tanh(g) * u;
  // out = cap * tanh(x / cap); gpt-oss's clamped SwiGLU. out may alias the first input.
  void (*geluMul)(float* out, const float* g, const float* u, int64_t i0, int64_t i1);
  void (*softcap)(float* out, const float* x, float cap, int64_t i0, int64_t i1);
  void (*swigluClamped)(float* out, const float* g, const float* u, float alpha, float limit, int64_t i0, int64_t i1);
  // n rounds of independent byte-product chains (byteDotOpsPerRound operations a round, a
  // multiply-add two) as the int8 prompt tiles multiply: vpdpbusd where the CPU has VNNI at the
  // variant's width, else vpmaddubsw and vpmaddwd; their yardstick. Null on the portable build.
  double (*byteDotLoop)(int64_t n);
  double byteDotOpsPerRound;
  // The decode kernel's reads alone (the `attention` task's K and V rows, and an int8 cache's
  // scales, in its order, steps and read-ahead, nothing computed): their bytes summed as 64-bit
  // words (modulo 2^64) into *sum, the benchmarks' limit of the read pattern. False (nothing read)
  // for an int8 cache whose path widens (no loads-only twin).
  bool (*attentionLoads)(const AttnArgs& a, int64_t t, int64_t h0, int64_t h1, int64_t p0, int64_t p1,
                         uint64_t* sum);
  // Query tokens [t0, t1), each with its own new key at cache slot slots[t] (just written), that key
  // folded into a.out and a.lse, the tokens' finished attention over the keys before them: the late
  // pass of a step of decode tokens and its merge in one (decode_append_key.h), on every KV dtype.
  void (*appendKey)(const AttnArgs& a, const int32_t* slots, int64_t t0, int64_t t1);
  // The smallest batch whose bf16 products take packed activations: kSmallBatch + 1, except where
  // the AMX tiles take smaller batches (amx_bf16.h, kAmxFromTokens).
  int64_t bf16PackedFrom;
  // The sampler's rows (sampling_kernels.h; its softmax at a temperature is `softmax`'s scale): the
  // first index of x's largest value; the index a draw u in [0, 1) lands on in a row of probabilities.
  int64_t (*argmax)(const float* x, int64_t n);
  int64_t (*drawIndex)(const float* p, int64_t n, double u);
  // The k largest of x[0, n), ties to the lower index, their indices in idx[0, k) (unordered).
  int64_t (*topK)(const float* x, int64_t n, int64_t k, int32_t* idx);
  // top-p's candidates among the probabilities p[0, n): their indices in idx[0, m), m returned.
  int64_t (*nucleusCandidates)(const float* p, int64_t n, double topP, int32_t* idx);
};

// Whether a product of n tokens on weights of `dtype` takes packed activations (MatmulArgs::xt):
// the addon packs them once per call before the row slices run, and slices in whole row tiles.
inline bool takesPacked(const KernelTable& k, int dtype, int64_t n) {
  return n > kSmallBatch || (dtype == kBF16 && n >= k.bf16PackedFrom);
}

// Whether this call's prompt runs may go through k.attentionTile: query groups of up to kTileRows
// heads, head_dim a multiple of 16 up to kTileMaxHeadDim (any cache dtype).
inline bool tileFits(const KernelTable& k, const AttnArgs& a) {
  const int64_t G = a.nHeads / a.cache.nKvHeads, D = a.cache.headDim;
  return k.attentionTile != nullptr && G <= kTileRows && D % 16 == 0 && D <= kTileMaxHeadDim;
}

const KernelTable* table_portable();
#if defined(__x86_64__) || defined(_M_X64)
const KernelTable* table_avx2();
const KernelTable* table_avx512();
const KernelTable* table_avx512bf16();
const KernelTable* table_amxbf16();
// amxbf16 with its tile instructions done in software (amx_bf16.h): a test of the tiled
// products' logic on any CPU with AVX-512-BF16, never chosen by itself.
const KernelTable* table_amxbf16_emulated();
// avx2 and avx512 as on CPUs without AVX-VNNI and AVX-512 VNNI (int8 attention through
// vpmaddubsw: kv_int8_ymm.h, kv_int8_zmm.h): those paths tested and measured on CPUs that have
// VNNI, never chosen by themselves.
const KernelTable* table_avx2_novnni();
const KernelTable* table_avx512_novnni();
#endif

}  // namespace lk
