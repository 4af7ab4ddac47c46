// Decode attention's steps: how a task's keys are gathered into online-softmax steps of
// contiguous runs (one per physical block), the per-thread scratch they compute in, and the
// prefetches that start each run's reads early. Included by kernels.cpp inside its variant
// namespace, before the decode kernels (decode_attention_fma.h, decode_attention_dot.h).
#pragma once

// ---- attention ------------------------------------------------------------------------------------

// The most keys one online-softmax step takes, and the row stride of the per-step score buffers; a
// multiple of every W.
constexpr int64_t kChunk = 512;
// Keys per step: kStepBlocks blocks, at least kMinStep keys and at most kChunk (stepKeys). A step
// reads its blocks at once, and each block's rows of the task's KV heads are one contiguous region.
// With blocks of 16, 128-key steps (8 blocks) took MHA on bf16 from 70-89% to 96-99% of the
// streaming read against 64-key steps on an AVX-512 EPYC (2 threads, alternating builds), and 256
// keys were slower. With 8 KV heads a block of 16 is only 32 KiB of K, and the plain read of that
// pattern alone reaches 64-83% of the streaming read; blocks of 64 in steps of 8 blocks (512 keys)
// read 73-91%, and GQA attention on blocks of 32 and 64 went from 46-57% to 66-77% (BENCHMARKS.md).
constexpr int64_t kStepBlocks = 8, kMinStep = 128;
inline int64_t stepKeys(int64_t blockSize) { return std::clamp(kStepBlocks * blockSize, kMinStep, kChunk); }
// Keys per kernel call within a step: the values kernel passes over its keys once per few columns,
// so their rows (4 KiB for head_dim 128 in bf16) have to stay in L1 between passes.
constexpr int64_t kSub = 16;

// One online-softmax step: up to stepKeys keys as contiguous runs, one per physical block. A run's
// rows for KV head h start at element base + h * headStride (all heads of a block are stored one
// after another, so one task's heads of one block are a single contiguous region).
struct Step {
  int64_t n, nRuns;
  int64_t base[kChunk], len[kChunk];
};

// A step of fewer than kStepBlocks runs (a context shorter than 8 blocks, or its last step) reads
// too few regions at once: with blocks of 64, a 128-key context is 2 runs, and decode attention
// took 1.2-1.7x the time it took on blocks of 16 (8 runs) with head_dim 128. Such a step's runs are
// cut into pieces of whole kSub keys, up to kStepBlocks in all, each a run of its own: the same
// regions read as more streams. A piece keeps at least a page (4 KiB) of each head's rows: pieces
// of 2 KiB (head_dim 64 in bf16) were slower than not cutting (1.3-1.5x), a stream the hardware
// prefetcher has to find again at every head. `rowBytes`: one key's row of one head.
inline void splitRuns(Step& st, int64_t rowElems, int64_t rowBytes) {
  if (st.nRuns == 0 || st.nRuns >= kStepBlocks) return;
  const int64_t per = kStepBlocks / st.nRuns;  // pieces each run may become
  const int64_t minPiece = std::max<int64_t>(kSub, (4096 / rowBytes + kSub - 1) / kSub * kSub);
  if (per < 2) return;
  int64_t base[kStepBlocks], len[kStepBlocks], n = 0;
  for (int64_t r = 0; r < st.nRuns; r++) {
    const int64_t pieces = std::max<int64_t>(1, std::min(per, st.len[r] / minPiece));
    const int64_t piece = (st.len[r] + pieces - 1) / pieces;
    const int64_t step = (piece + kSub - 1) / kSub * kSub;  // whole calls of kSub keys a piece
    for (int64_t o = 0; o < st.len[r]; o += step) {
      base[n] = st.base[r] + o * rowElems;
      len[n++] = std::min(step, st.len[r] - o);
    }
  }
  std::copy(base, base + n, st.base);
  std::copy(len, len + n, st.len);
  st.nRuns = n;
}

// Per task: the query heads of its KV heads.
struct AttnScratch {
  lk::LineVector<float> q;       // [H, headDim] queries, in the pair order of the KV dtype
  lk::LineVector<float> acc;     // [H, headDim] running numerator, same order
  lk::LineVector<float> scores;  // [H, kChunk]
  std::vector<float> m, l;    // [H] running max and denominator
  lk::LineVector<uint16_t> qb;   // [H, headDim] queries rounded to bf16, in order (bf16 dot products)
  lk::LineVector<uint16_t> pb;   // [H, kChunk] probabilities rounded to bf16 (bf16 dot products)
  lk::LineVector<uint16_t> qx;   // qb of each KV head's query heads in fours, in quadScoresTile's order
};

inline AttnScratch& attnScratch(int64_t H, int64_t D) {
  thread_local AttnScratch s;
  if (int64_t(s.acc.size()) < H * D) {
    s.acc.resize(H * D);
    s.q.resize(H * D);
    s.qb.resize(H * D);
    s.qx.resize(H * D);
  }
  if (int64_t(s.scores.size()) < H * kChunk) {
    s.scores.resize(H * kChunk);
    s.pb.resize(H * kChunk);
  }
  if (int64_t(s.m.size()) < H) {
    s.m.resize(H);
    s.l.resize(H);
  }
  return s;
}

// The first two cache lines from element `first` on: enough to start the page walk and (being two
// in a row) to train the hardware prefetcher on that region.
template <int DT>
inline void touchRows(const void* base, int64_t first) {
  constexpr int64_t esize = DT == 0 ? 4 : 2;
  const char* p = static_cast<const char*>(base) + first * esize;
  __builtin_prefetch(p, 0, 3);
  __builtin_prefetch(p + 64, 0, 3);
}

// All cache lines of n rows (rows[j] + off is row j's first element) into L1.
template <int DT>
inline void prefetchRows(const void* base, const int64_t* rows, int64_t off, int64_t n, int64_t D) {
  constexpr int64_t esize = DT == 0 ? 4 : 2;
  for (int64_t j = 0; j < n; j++) {
    const char* p = static_cast<const char*>(base) + (rows[j] + off) * esize;
    for (int64_t b = 0; b < D * esize; b += 64) __builtin_prefetch(p + b, 0, 3);
  }
}
