#include "attention_runner.h"

#include <algorithm>
#include <atomic>
#include <cmath>

namespace lk {

namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Parts per token: enough tasks for every thread, each part at least kMinPart keys so merging
// stays cheap.
int64_t attentionSplits(int64_t want, int64_t tokens, int64_t longest) {
  constexpr int64_t kMinPart = 512;
  if (tokens == 0 || tokens >= want || longest < 2 * kMinPart) return 1;
  return std::max<int64_t>(1, std::min(ceilDiv(want, tokens), longest / kMinPart));
}

// Whether token u continues token u - 1's prompt run: the same sequence, and each end of its key
// range at most one key past the previous token's (causal prompt tokens, a sliding window, or the
// equal ranges of early-q attention over the keys cached before a step).
bool continuesRun(const AttnArgs& a, int64_t u) {
  const int32_t dEnd = a.ctxEnd[u] - a.ctxEnd[u - 1], dStart = a.ctxStart[u] - a.ctxStart[u - 1];
  return a.qSeq[u] == a.qSeq[u - 1] && dEnd >= 0 && dEnd <= 1 && dStart >= 0 && dStart <= 1;
}

// Rows a task for an element-wise pass over `rows` rows of `width` floats: tasks of at least 32k
// elements, at most four a thread.
int64_t rowsPerTask(const ThreadPool& pool, int64_t rows, int64_t width) {
  const int64_t grain = std::max<int64_t>(1, 32768 / width);
  const int64_t nTasks = std::max<int64_t>(1, std::min<int64_t>(ceilDiv(rows, grain), int64_t(pool.size()) * 4));
  return ceilDiv(rows, nTasks);
}

}  // namespace

bool AttentionRunner::runTiles(const KernelTable* k, ThreadPool& pool, const AttnArgs& a, int64_t n) {
  if (!tilesOn_ || !tileFits(*k, a)) return false;
  const int64_t nKv = a.cache.nKvHeads, per = tileTokens(a.nHeads / nKv);
  tiles_.clear();
  singles_.clear();
  for (int64_t t = 0, u; t < n; t = u) {
    for (u = t + 1; u < n && continuesRun(a, u);) u++;
    if (u - t < kTileMinTokens) {
      for (int64_t i = t; i < u; i++) singles_.push_back(i);
      continue;
    }
    // Last tiles first: they have the most keys, and starting them first evens out the threads.
    for (int64_t e = u; e > t; e -= per) tiles_.push_back({std::max(t, e - per), e});
  }
  if (tiles_.empty()) return false;
  // Tile tasks (a tile and one KV head) first, then the other tokens whole, one task each.
  const int64_t nTileTasks = int64_t(tiles_.size()) * nKv, D = a.cache.headDim;
  pool.forEach(nTileTasks + int64_t(singles_.size()), [&](int64_t task) {
    if (task < nTileTasks) {
      const Tile& tile = tiles_[size_t(task / nKv)];
      return k->attentionTile(a, tile.t0, tile.t1, task % nKv);
    }
    const int64_t t = singles_[size_t(task - nTileTasks)], h = t * a.nHeads;
    k->attention(a, t, 0, nKv, a.ctxStart[t], a.ctxEnd[t], a.out + h * D, a.lse ? a.lse + h : nullptr);
  });
  return true;
}

// How run() cuts a call's tokens into tasks. A task is one token's KV heads [h0, h1) over a part
// of its keys. All of a token's heads in one task read each block as one contiguous region; when
// there are too few tokens to keep every thread busy, long contexts are cut into parts
// (flash-decoding) and short ones into head groups. Four tasks a thread even out unequal
// contexts; one thread has nothing to even out, and each extra task would only walk the token's
// blocks and set up its scratch again.
struct AttentionRunner::Plan {
  int64_t nSplit, headParts, tasks;
  Plan(const ThreadPool& pool, const AttnArgs& a, int64_t n) {
    int64_t longest = 0;
    for (int64_t t = 0; t < n; t++) longest = std::max<int64_t>(longest, a.ctxEnd[t] - a.ctxStart[t]);
    const int64_t want = pool.size() == 1 ? 1 : int64_t(pool.size()) * 4;
    nSplit = attentionSplits(want, n, longest);
    headParts = n * nSplit >= want ? 1 : std::min(a.cache.nKvHeads, ceilDiv(want, n * nSplit));
    tasks = n * nSplit * headParts;
  }
  // Task i: token t's part s (of nSplit, each a whole number of blocks), heads [h0, h1), keys [p0, p1).
  struct Task {
    int64_t t, s, h0, h1, p0, p1;
  };
  Task task(const AttnArgs& a, int64_t i) const {
    Task k;
    const int64_t nKv = a.cache.nKvHeads, part = (i / nSplit) % headParts;
    k.s = i % nSplit;
    k.t = i / (nSplit * headParts);
    k.h0 = part * nKv / headParts;
    k.h1 = (part + 1) * nKv / headParts;
    const int64_t start = a.ctxStart[k.t], end = a.ctxEnd[k.t];
    const int64_t per = ceilDiv(ceilDiv(end - start, nSplit), a.cache.blockSize) * a.cache.blockSize;
    k.p0 = std::min<int64_t>(end, start + k.s * per);
    k.p1 = std::min<int64_t>(end, k.p0 + per);
    return k;
  }
};

void AttentionRunner::run(const KernelTable* k, ThreadPool& pool, const AttnArgs& a, int64_t n) {
  if (n <= 0) return;
  if (runTiles(k, pool, a, n)) return;
  const int64_t D = a.cache.headDim, G = a.nHeads / a.cache.nKvHeads;
  const Plan plan(pool, a, n);
  const int64_t nSplit = plan.nSplit;
  if (nSplit == 1) {
    pool.forEach(plan.tasks, [&](int64_t i) {
      const Plan::Task x = plan.task(a, i);
      const int64_t h = x.t * a.nHeads + x.h0 * G;
      k->attention(a, x.t, x.h0, x.h1, x.p0, x.p1, a.out + h * D, a.lse ? a.lse + h : nullptr);
    });
    return;
  }
  // Flash-decoding: each token's parts computed as separate tasks with their lse, then merged.
  // Partial row (t, part s, head h) is ((t * nSplit + s) * nHeads + h).
  const int64_t rows = n * nSplit * a.nHeads;
  if (int64_t(partOut_.size()) < rows * D) partOut_.resize(size_t(rows * D));
  if (int64_t(partLse_.size()) < rows) partLse_.resize(size_t(rows));
  if (int64_t(mergeLse_.size()) < n * a.nHeads) mergeLse_.resize(size_t(n * a.nHeads));
  float* po = partOut_.data();
  float* pl = partLse_.data();
  pool.forEach(plan.tasks, [&](int64_t i) {
    const Plan::Task x = plan.task(a, i);
    const int64_t row = (x.t * nSplit + x.s) * a.nHeads + x.h0 * G;
    k->attention(a, x.t, x.h0, x.h1, x.p0, x.p1, po + row * D, pl + row);
  });
  float* lse = a.lse ? a.lse : mergeLse_.data();
  const int64_t H = a.nHeads;
  for (int64_t t = 0; t < n; t++) {
    const int64_t first = t * nSplit * H;
    std::copy(po + first * D, po + (first + H) * D, a.out + t * H * D);
    std::copy(pl + first, pl + first + H, lse + t * H);
    for (int64_t s = 1; s < nSplit; s++)
      k->merge(a.out + t * H * D, lse + t * H, po + (first + s * H) * D, pl + first + s * H, D, 0, H);
  }
}

bool AttentionRunner::readPattern(const KernelTable* k, ThreadPool& pool, const AttnArgs& a, int64_t n,
                                  uint64_t* sum) {
  *sum = 0;
  if (n <= 0) return true;
  const Plan plan(pool, a, n);
  std::atomic<uint64_t> loaded{0};
  std::atomic<bool> ok{true};
  pool.forEach(plan.tasks, [&](int64_t i) {
    const Plan::Task x = plan.task(a, i);
    uint64_t s = 0;
    if (!k->attentionLoads(a, x.t, x.h0, x.h1, x.p0, x.p1, &s)) ok = false;
    loaded.fetch_add(s, std::memory_order_relaxed);
  });
  *sum = loaded.load();
  return ok.load();
}

void AttentionRunner::merge(const KernelTable* k, ThreadPool& pool, float* outA, float* lseA, const float* outB,
                            const float* lseB, int64_t rows, int64_t d) {
  if (rows <= 0) return;
  const int64_t per = rowsPerTask(pool, rows, d);
  pool.forEach(ceilDiv(rows, per), [&](int64_t task) {
    const int64_t a = task * per;
    k->merge(outA, lseA, outB, lseB, d, a, std::min(rows, a + per));
  });
}

void AttentionRunner::appendKeys(const KernelTable* k, ThreadPool& pool, const AttnArgs& a, const int32_t* slots,
                                 int64_t n) {
  if (n <= 0) return;
  // A token's rows of q are the unit: its heads are a few thousand multiply-adds.
  const int64_t per = rowsPerTask(pool, n, a.nHeads * a.cache.headDim);
  pool.forEach(ceilDiv(n, per),
               [&](int64_t task) { k->appendKey(a, slots, task * per, std::min(n, (task + 1) * per)); });
}

void AttentionRunner::sinks(ThreadPool& pool, float* out, float* lse, const float* sinks, int64_t nTokens,
                            int64_t nHeads, int64_t d) {
  const int64_t rows = nTokens * nHeads;
  if (rows <= 0) return;
  const int64_t per = rowsPerTask(pool, rows, d);
  pool.forEach(ceilDiv(rows, per), [&](int64_t task) {
    const int64_t r1 = std::min(rows, (task + 1) * per);
    for (int64_t r = task * per; r < r1; r++) {
      const float s = sinks[r % nHeads], l = lse[r];
      float* o = out + r * d;
      if (std::isinf(l) && l < 0) {  // no keys: the sink takes all of the weight, and its value is zero
        std::fill(o, o + d, 0.0f);
        lse[r] = s;
        continue;
      }
      const float m = std::max(l, s);
      const float wl = std::exp(l - m), ws = std::exp(s - m);
      const float f = wl / (wl + ws);
      for (int64_t i = 0; i < d; i++) o[i] *= f;
      lse[r] = m + std::log(wl + ws);
    }
  });
}

}  // namespace lk
