// The shared-memory segment of the native attention data plane: one per model-side link to an
// attention worker, created by the model side, opened by the worker, written and read only by
// native code on both sides (dataplane_client.cpp, dataplane_worker.cpp). JavaScript sizes and
// maps it and keeps the control plane (CONFIGURE, RESERVE/RELEASE, stats) on the channel.
//
// Layout (int32 words, little endian; every region 64-byte aligned):
//   0      header line: magic, layout, numTags, maxTokens, maxSeqs, maxBlocksPerSeq, qWidth,
//          kvWidth, numLayers, model pid, worker pid, worker state
//   64     worker doorbell line: postCount (futex word), workerSleeping
//   128    model doorbell line: replyCount (futex word), modelSleeping (how many model-side
//          threads sleep on it: several processes may, see model workers)
//   256    worker's error message (NUL-terminated, kErrorBytes)
//   4096   tag 0's region, then tag 1's, … (tagBytes each, a multiple of 4096)
// A tag (micro-batch) region:
//   +0     model line: posted (postings made), then the posting queue (kQueue entries of
//          kind, layer, nTokens, nSeqs, order), then KV postings made and OUT replies taken
//   +128   worker line: consumed (postings taken), replied (OUT replies published), reply
//          layer, reply compute µs
//   +256   seqStart[maxSeqs + 1], positions[maxTokens], blockTables[maxSeqs × maxBlocksPerSeq],
//          windowTables[maxSeqs × maxBlocksPerSeq] (the window layers' own pool, where the worker
//          keeps one: a STEP says in its layer word, 1, that it filled them)
//   then   q[maxTokens × qWidth], k[maxTokens × kvWidth], v[…], out[maxTokens × qWidth] (f32)
//
// Per micro-batch the postings run STEP, then Q and KV for each layer; the model side posts the
// next layer's Q only after it has taken the last OUT, so q/k/v/out are never rewritten while
// the other side reads them. Publication is a release store of a counter after the data, read
// with an acquire load; a futex wake happens only when the other side said it sleeps.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "spin_wait.h"

namespace lk::dp {

constexpr int32_t kMagic = 0x4c504444;  // "DDPL"
// 4: a TCP data-plane socket names its peer after the token, KV frames name their reply peer,
// SETTLE/SETTLED frames (dataplane_tcp.h); the segment itself is as in 3.
constexpr int32_t kLayout = 4;
constexpr int kQueue = 4;
// A queue entry: kind, layer, nTokens, nSeqs, order (the segment's post count when it was made:
// the worker takes postings of all micro-batches in the order they were made).
constexpr int kEntryWords = 5;
constexpr size_t kErrorBytes = 1024;
constexpr size_t kHeaderBytes = 4096;

enum Kind : int32_t { kStep = 1, kQ = 2, kKv = 3 };
enum WorkerState : int32_t { kNotAttached = 0, kRunning = 1, kFailed = 2, kStopped = 3 };

// Header word indices.
enum H : int {
  H_MAGIC = 0,
  H_LAYOUT,
  H_TAGS,
  H_MAX_TOKENS,
  H_MAX_SEQS,
  H_MAX_BLOCKS,
  H_Q_WIDTH,
  H_KV_WIDTH,
  H_LAYERS,
  H_MODEL_PID,
  H_WORKER_PID,
  H_WORKER_STATE,
  H_POST_COUNT = 16,
  H_WORKER_SLEEPING = 17,
  H_REPLY_COUNT = 32,
  H_MODEL_SLEEPING = 33,
};
constexpr size_t kErrorOffset = 256;

struct Geometry {
  int32_t numTags, maxTokens, maxSeqs, maxBlocksPerSeq, qWidth, kvWidth, numLayers;
};

inline size_t align(size_t n, size_t a) { return (n + a - 1) / a * a; }

// Byte offsets inside one tag's region.
struct TagLayout {
  size_t seqStart, positions, blockTables, windowTables, q, k, v, out, bytes;
};

inline TagLayout tagLayout(const Geometry& g) {
  TagLayout t{};
  size_t at = 256;
  t.seqStart = at;
  at = align(at + 4 * size_t(g.maxSeqs + 1), 64);
  t.positions = at;
  at = align(at + 4 * size_t(g.maxTokens), 64);
  t.blockTables = at;
  at = align(at + 4 * size_t(g.maxSeqs) * size_t(g.maxBlocksPerSeq), 64);
  t.windowTables = at;
  at = align(at + 4 * size_t(g.maxSeqs) * size_t(g.maxBlocksPerSeq), 64);
  t.q = at;
  at = align(at + 4 * size_t(g.maxTokens) * size_t(g.qWidth), 64);
  t.k = at;
  at = align(at + 4 * size_t(g.maxTokens) * size_t(g.kvWidth), 64);
  t.v = at;
  at = align(at + 4 * size_t(g.maxTokens) * size_t(g.kvWidth), 64);
  t.out = at;
  at = align(at + 4 * size_t(g.maxTokens) * size_t(g.qWidth), 4096);
  t.bytes = at;
  return t;
}

inline size_t segmentBytes(const Geometry& g) { return kHeaderBytes + size_t(g.numTags) * tagLayout(g).bytes; }

// Tag-region word indices.
enum T : int {
  T_POSTED = 0,
  T_QUEUE = 1,  // kQueue entries of kEntryWords words
  // Model-side counters live in the segment, not in one process: the model workers of a
  // rotation post a micro-batch's layers from different processes, one after the other.
  T_EXPECT = 21,  // KV postings made (each is answered by one OUT)
  T_TAKEN = 22,   // OUT replies taken (the value of T_EXPECT when the last one was taken)
  T_CONSUMED = 32,
  T_REPLIED = 33,
  T_REPLY_LAYER = 34,
  T_REPLY_MICROS = 35,
};

// A shared word: atomics on the mapping even where this side only reads (hence const_cast).
inline std::atomic<int32_t>* word(const void* base, size_t byteOffset, int index) {
  return reinterpret_cast<std::atomic<int32_t>*>(const_cast<char*>(static_cast<const char*>(base)) + byteOffset) +
         index;
}

// Shared futex (not private: the word is in a mapping of two processes).
void futexWait(std::atomic<int32_t>* w, int32_t expected, int64_t timeoutNs);
void futexWake(std::atomic<int32_t>* w);
bool pidAlive(int32_t pid);
// The waits' clock and steps (spin_wait.h, shared with the kernel pool).
using lk::cpuRelax;
using lk::nowNs;
using lk::exchangeSpinStep;

/** What `hostJitter` saw: steps of over 2 µs between clock reads on a spinning core. */
struct JitterStats {
  int64_t elapsedNs = 0, gaps = 0, lostNs = 0, longestNs = 0;
  bool pinned = false;
};
/**
 * Spins on core `cpu` (any core when negative) for `durationNs` on a thread of its own and reports
 * the time the core was taken away: the noise floor of every latency measured on this host.
 */
JitterStats hostJitter(int64_t durationNs, int cpu);

}  // namespace lk::dp
