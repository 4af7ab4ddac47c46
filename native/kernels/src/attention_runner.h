// Splits one attention call (many query tokens, each over its own key range) into tasks for a
// thread pool: the part of the kernels' Node-API face that is not argument checking, shared with
// the attention worker's native data plane (dataplane_worker.cpp), which calls it on its own
// thread and pool. Owns the flash-decoding scratch, which grows once and is then reused.
#pragma once
#include <cstdint>
#include <vector>

#include "kernel_table.h"
#include "thread_pool.h"

namespace lk {

class AttentionRunner {
 public:
  /**
   * out/lse for nTokens query tokens (a.lse may be null). Arguments must already be checked:
   * every block a token reads is a real block of the cache.
   */
  void run(const KernelTable* k, ThreadPool& pool, const AttnArgs& a, int64_t nTokens);

  /**
   * The decode kernel's reads of the same call alone (KernelTable::attentionLoads), cut into the
   * same tasks as run()'s decode tokens: into *sum, the sum (modulo 2^64) of the 64-bit words of
   * every K and V row (and int8 scale) the tasks read; a benchmark's limit of the read pattern.
   * False where the cache's path has no loads-only twin (int8 on a widening path).
   */
  bool readPattern(const KernelTable* k, ThreadPool& pool, const AttnArgs& a, int64_t nTokens, uint64_t* sum);

  /** outA/lseA ← merge of (outA, lseA) and (outB, lseB) over rows [0, rows) of headDim each. */
  static void merge(const KernelTable* k, ThreadPool& pool, float* outA, float* lseA, const float* outB,
                    const float* lseB, int64_t rows, int64_t headDim);

  /**
   * Folds attention sinks (gpt-oss: a learned logit per head that joins every softmax with a zero
   * value) into finished rows: out ← out · e^lse / (e^lse + e^sink), lse ← log(e^lse + e^sink).
   * Rows are [nTokens, nHeads] of headDim each; sinks[h] is head h's logit. Applied once, to the
   * whole key range's result, so a split (early q, flash-decoding parts) counts the sink once.
   */
  static void sinks(ThreadPool& pool, float* out, float* lse, const float* sinks, int64_t nTokens, int64_t nHeads,
                    int64_t headDim);

  /**
   * A step of decode tokens (one a sequence) on the attention worker: each token's own key, at
   * cache slot slots[t], folded into a.out and a.lse, its finished attention over the keys before
   * it (KernelTable::appendKey), in place of a late pass over that key and a merge.
   */
  static void appendKeys(const KernelTable* k, ThreadPool& pool, const AttnArgs& a, const int32_t* slots,
                         int64_t nTokens);

  /** Whether prompt runs take the tiled kernel where the variant has one (on by default). */
  void setTiles(bool on) { tilesOn_ = on; }

 private:
  /**
   * The call's prompt runs (kTileMinTokens consecutive tokens of one sequence or more) in tiles of
   * query tokens where the variant has them and tileFits allows, its other tokens one task each;
   * false (nothing run) where there is no such run.
   */
  bool runTiles(const KernelTable* k, ThreadPool& pool, const AttnArgs& a, int64_t nTokens);

  struct Plan;
  struct Tile {
    int64_t t0, t1;
  };
  std::vector<float> partOut_, partLse_, mergeLse_;
  std::vector<Tile> tiles_;        // this call's tiles, reused from call to call
  std::vector<int64_t> singles_;   // this call's tokens outside any tile
  bool tilesOn_ = true;
};

}  // namespace lk
