// Software prefetch of an attention task's KV reads a fixed number of bytes ahead of its
// kernels, in the order they read them, paced by what the kernels have read so far; and of the
// streaming products' weight rows (weightReadAhead). Included by kv_int8.h and bf16_dot.h, and
// opens each variant's namespace itself.
//
// Why: a decode-attention task reads, step by step, the K then the V items of each of its KV heads
// from a few scattered blocks at once, and computes between its loads. The hardware prefetcher
// alone then keeps too few lines in flight: on an AVX-512 EPYC one thread of the int8 kernel read
// a 41% share of a one-thread streaming read while its arithmetic took only about a third of the
// time. Asking for the lines ahead, a few at a time from inside the kernels' loops (a burst of a
// whole item list per call measured slower), keeps the misses overlapping the arithmetic. The int8
// VNNI path always uses it; the float caches' kernels where lk::readAhead() says (Intel CPUs: on
// a Xeon with AMX a bf16 cache read 1.13-1.19x faster with it; on the AMD EPYC the same kernels,
// whose hardware-prefetched reads ran at 60-75% of the streaming read, took 20-30% longer with it
// at every distance and hint tried); the int8 widening path is bound by its arithmetic
// (BENCHMARKS.md).
#pragma once
#include <cstdint>

namespace LK_VARIANT {

// How far ahead of the kernels the task's K and V lines are asked for: 256 lines (16 KiB, one KV
// head's K or V of a 128-key step at head_dim 128). Swept for the int8 path on an AVX-512 EPYC (2
// threads, batch 8, 8 KV heads, context 16,384, distances alternating call by call, best of 12):
// 64 lines 8.9 ms a call, 128 8.4, 256 8.2, against 12.0 with none; in other runs 512 and 1,024
// were level with 256 or slower, 2,048 slower; prefetcht1/t2 instead of t0 slower, nta level. For
// a bf16 cache on a Xeon with AMX, 2,048 to 16,384 bytes were within the host's spread, 16,384 the
// steadiest (BENCHMARKS.md).
constexpr int64_t kReadAheadBytes = 256 * 64;

// Whether asking ahead pays for a decode-attention task reading `taskBytes` of K and V in rows of
// `rowBytes`: its cost is a few instructions a row, which rows under 128 bytes (head_dim 8 to 32)
// do not earn back, nor a task whose rows the caches already hold. On a Xeon with AMX, 2 threads,
// batch 8, 8 KV heads: rows of 32 bytes (head_dim 8, f32) 2.2x slower from cache, level from DRAM;
// 64 (head_dim 32, bf16) 0.94x from DRAM; 128 (head_dim 64, bf16) 1.07-1.18x from DRAM, 0.80-0.82x
// from cache; 256 (head_dim 128) 1.08-1.19x from DRAM, 0.92-0.94x from cache (BENCHMARKS.md). A
// model's decode step reads every other layer's weights and KV between two reads of one layer's
// cache, so beyond the smallest models that cache comes from DRAM; 1 MiB a task keeps short
// contexts (a few hundred keys) to the hardware prefetcher.
constexpr int64_t kReadAheadMinRowBytes = 128, kReadAheadMinTaskBytes = 1 << 20;
inline bool aheadPays(int64_t rowBytes, int64_t taskBytes) {
  return rowBytes >= kReadAheadMinRowBytes && taskBytes >= kReadAheadMinTaskBytes;
}

// How far ahead of each of its streams a product of up to kSmallBatch tokens on float weights asks
// for the weight rows, where lk::readAhead() says: 4 KiB (its four streams a thread keep 16 KiB in
// flight). On a Xeon with AMX (2 threads, 4096 x 4096 from DRAM), bf16 and f16 rows read at 83-86%
// of the streaming read without it; 1, 2 and 4 KiB ahead reached 93-102%, 4 KiB the steadiest;
// prefetcht1 level with prefetcht0 (BENCHMARKS.md).
constexpr int64_t kWeightReadAheadBytes = 4096;

// Asks for the line kWeightReadAheadBytes past p, once per cache line a stream moves over: the
// stream steps StepBytes at a time and p is byteOffset into its row.
template <int64_t StepBytes>
inline void weightReadAhead(const void* p, int64_t byteOffset) {
  if (StepBytes >= 64 || (byteOffset & 63) == 0)
    __builtin_prefetch(static_cast<const char*>(p) + kWeightReadAheadBytes, 0, 3);
}

// Where a task's reads lie: K and V each from their base; item j of step s on KV head kh starts
// at base + (rows(s)[j] + first + kh * headUnits) * unitBytes.
struct ReadLayout {
  const char* k;
  const char* v;
  int64_t first, headUnits, unitBytes;
};

// A task's reads: step s has items(s) items per KV head (0 while the step is not gathered yet, or
// past the range's end), at the row offsets rows(s) in the order the kernels read them. Each step
// reads every head's K items, then every head's V items. The address of a (step, phase, head)'s
// first row is worked out once, so an item costs a row offset's load and its lines' prefetches:
// with the address rebuilt for every item, the bookkeeping drew about a fifth of the samples of a
// bf16 call's step loop, an eighth of the call's (perf, AVX-512 EPYC, keys from L3).
template <typename Items, typename Rows>
class ReadAhead {
 public:
  ReadAhead(int64_t aheadBytes, int64_t heads, int64_t itemBytes, ReadLayout at, Items items, Rows rows)
      : ahead_(aheadBytes), heads_(heads), itemBytes_(itemBytes), at_(at), items_(items), rowsOf_(rows) {}

  // The kernels are about to read `bytes` more bytes: asks for the lines up to `ahead` bytes past
  // them into L1, a whole item at a time.
  inline void consumed(int64_t bytes) {
    done_ += bytes;
    while (issued_ < done_ + ahead_) {
      if (!ready_ && !position()) return;  // not gathered yet (or the end): later
      const char* p = cur_ + rows_[j_] * at_.unitBytes;
      for (int64_t b = 0; b < itemBytes_; b += 64) __builtin_prefetch(p + b, 0, 3);
      issued_ += itemBytes_;
      if (++j_ < n_) continue;
      j_ = 0;
      ready_ = false;
      if (++kh_ < heads_) continue;
      kh_ = 0;
      if (++phase_ < 2) continue;
      phase_ = 0;
      s_++;
      n_ = 0;
    }
  }

 private:
  // The next item's (step, phase, head): its step's rows (once a step) and the head's first byte.
  inline bool position() {
    if (n_ <= 0) {
      if ((n_ = items_(s_)) <= 0) return false;
      rows_ = rowsOf_(s_);
    }
    cur_ = (phase_ ? at_.v : at_.k) + (at_.first + kh_ * at_.headUnits) * at_.unitBytes;
    ready_ = true;
    return true;
  }

  const int64_t ahead_, heads_, itemBytes_;
  const ReadLayout at_;
  Items items_;
  Rows rowsOf_;
  int64_t done_ = 0, issued_ = 0;  // bytes the kernels have read, bytes asked for
  int64_t s_ = 0, n_ = 0, j_ = 0, kh_ = 0;  // the next item to ask for, and its step's item count
  int phase_ = 0;
  bool ready_ = false;  // rows_ and cur_ hold the next item's step and head
  const int64_t* rows_ = nullptr;
  const char* cur_ = nullptr;
};

template <typename Items, typename Rows>
ReadAhead<Items, Rows> makeReadAhead(int64_t aheadBytes, int64_t heads, int64_t itemBytes, ReadLayout at, Items items,
                                     Rows rows) {
  return ReadAhead<Items, Rows>(aheadBytes, heads, itemBytes, at, items, rows);
}

}  // namespace LK_VARIANT
