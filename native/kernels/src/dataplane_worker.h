// The attention worker's side of the native data plane: one thread per model-side connection
// that polls the segment (spin, then futex), checks each posting, and runs the attention kernels
// on the KV cache directly, reading q/k/v in place and writing the output into the reply slot.
// JavaScript starts and stops it and reads its state; nothing on the per-layer path touches JS.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "attention_runner.h"
#include "dataplane_layout.h"
#include "kernel_table.h"
#include "thread_pool.h"

namespace lk::dp {

struct WorkerConfig {
  void* segment = nullptr;
  size_t segmentBytes = 0;
  std::vector<void*> kCaches, vCaches;  // one pair per layer
  std::vector<float*> kScales, vScales;  // int8 caches: one pair per layer (KvArgs::kScale)
  int dtype = 0;
  // numBlocks: the global pool; windowBlocks: the window layers' own pool (0: every layer's KV
  // lives in the global pool), whose tables a STEP carries in the windowTables slot.
  int64_t numBlocks = 0, windowBlocks = 0, blockSize = 0, nKvHeads = 0, headDim = 0, nHeads = 0;
  int64_t maxContext = 0;
  // Per layer, given once: sliding window (0: none; a windowed layer's KV is in the window pool
  // when there is one), softmax scale, score soft-cap (0: none).
  std::vector<int32_t> windows;
  std::vector<float> scales, softcaps;
  // Attention sinks (gpt-oss), [layers, nHeads] logits for this worker's heads; empty: none.
  std::vector<float> sinks;
  int threads = 1;
  int64_t spinNs = 0;
  const KernelTable* table = nullptr;
};

struct WorkerCounters {
  int state;
  std::string error;
  double spinSeconds, computeSeconds;
  uint64_t steps, layers;
};

class Worker {
 public:
  /** Checks the segment's header against the cache geometry; throws std::runtime_error. */
  explicit Worker(WorkerConfig c);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  /** Asks the loop to end and joins it (the loop notices within one futex slice). */
  void stop();
  WorkerCounters counters() const;
  /**
   * Runs every pending posting once on the calling thread, without the loop (the fuzzer's entry);
   * a bad posting fails the worker as the loop would. False once the worker has failed.
   */
  bool pollOnce();

 private:
  /** A step's key ranges for the layers of one window size (see KvAttention's KeyRanges). */
  struct Ranges {
    std::vector<int32_t> ctxStart, earlyEnd, lateStart;
  };
  struct TagState {
    std::vector<int32_t> seqStart, slots, windowSlots, qSeq, ctxEnd, tables, windowTables;
    std::vector<Ranges> ranges;  // one per distinct window (windows_)
    std::vector<float> lse, lateOut, lateLse;
    int32_t nTokens = 0, nSeqs = 0;
    int32_t consumed = 0;
    int32_t replied = 0;
    int32_t earlyLayer = -1;
    bool prepared = false;
    int64_t earlyNs = 0;
    // The compute time not yet reported: replies carry whole µs, and what a reply's floor leaves
    // goes into the next one, so the reported µs add up to the time spent (a floor alone took
    // about half a µs from every layer, and the 1-token benchmark counted it as the exchange's).
    int64_t unreportedNs = 0;
  };

  void loop();
  /** Runs pending postings of every micro-batch, oldest first; false if there were none. */
  bool drain();
  void runPosting(int tag);
  void onStep(int tag, const int32_t* entry);
  /** Checks sequence row q's table entries that tokens at [minPos, maxPos] read, in both pools. */
  void checkTables(int tag, const TagState& s, int32_t q, int32_t minPos, int32_t maxPos, bool withWindow);
  bool inWindowPool(int layer) const { return c_.windowBlocks > 0 && c_.windows[size_t(layer)] > 0; }
  void onQ(int tag, const int32_t* entry);
  void onKv(int tag, const int32_t* entry);
  /** Layer `layer`'s cache as the kernels take it (an int8 cache with its scales). */
  KvArgs cache(int layer) const;
  AttnArgs args(TagState& s, int layer, int tag, float* out, const int32_t* start, const int32_t* end, float* lse);
  [[noreturn]] void reject(int tag, const std::string& what);
  void fail(const std::string& what);
  char* tagBase(int tag) const { return static_cast<char*>(c_.segment) + kHeaderBytes + size_t(tag) * layout_.bytes; }

  WorkerConfig c_;
  Geometry g_{};
  TagLayout layout_{};
  std::vector<TagState> tags_;
  std::unique_ptr<ThreadPool> pool_;
  AttentionRunner runner_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;  // guards error_
  std::string error_;
  std::atomic<int> state_{kNotAttached};
  std::atomic<int64_t> spinNs_{0}, computeNs_{0};
  std::atomic<uint64_t> steps_{0}, layers_{0};
  std::vector<int32_t> windows_;   // the distinct per-layer windows (0 included when used)
  std::vector<int32_t> rangeOf_;   // per layer: its index into windows_ and TagState::ranges
  int32_t widestPoolWindow_ = 0;   // the widest window of a layer in the window pool
};

}  // namespace lk::dp
