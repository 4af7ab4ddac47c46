#include "dataplane_worker.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace lk::dp {

namespace {

// How long one futex sleep lasts before the loop checks its stop flag and the model's pid.
constexpr int64_t kSliceNs = 50'000'000;


// A posting the model side made is bad: the connection ends, the process carries on.
struct ProtocolError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace

Worker::Worker(WorkerConfig c) : c_(std::move(c)) {
  auto* h = static_cast<int32_t*>(c_.segment);
  if (c_.segmentBytes < kHeaderBytes || h[H_MAGIC] != kMagic || h[H_LAYOUT] != kLayout)
    throw std::runtime_error("not a data-plane segment of layout " + std::to_string(kLayout));
  g_ = {h[H_TAGS], h[H_MAX_TOKENS], h[H_MAX_SEQS], h[H_MAX_BLOCKS], h[H_Q_WIDTH], h[H_KV_WIDTH], h[H_LAYERS]};
  if (g_.numTags < 1 || g_.numTags > 64 || g_.maxTokens < 1 || g_.maxSeqs < 1 || g_.maxBlocksPerSeq < 1)
    throw std::runtime_error("data-plane header has an out-of-range geometry");
  if (int64_t(g_.qWidth) != c_.nHeads * c_.headDim || int64_t(g_.kvWidth) != c_.nKvHeads * c_.headDim)
    throw std::runtime_error("data-plane row widths (q " + std::to_string(g_.qWidth) + ", kv " +
                             std::to_string(g_.kvWidth) + ") do not match this worker's heads");
  if (size_t(g_.numLayers) != c_.kCaches.size())
    throw std::runtime_error("data-plane layer count does not match the KV cache");
  if (int64_t(g_.maxBlocksPerSeq) * c_.blockSize < c_.maxContext)
    throw std::runtime_error("data-plane block tables are too short for the context");
  layout_ = tagLayout(g_);
  if (segmentBytes(g_) > c_.segmentBytes) throw std::runtime_error("data-plane segment is truncated");
  tags_.resize(size_t(g_.numTags));
  for (auto& t : tags_) {
    const size_t n = size_t(g_.maxTokens);
    t.seqStart.resize(size_t(g_.maxSeqs) + 1);
    t.slots.resize(n);
    t.qSeq.resize(n);
    t.ctxStart.resize(n);
    t.ctxEnd.resize(n);
    t.earlyEnd.resize(n);
    t.lateStart.resize(n);
    t.tables.resize(size_t(g_.maxSeqs) * size_t(g_.maxBlocksPerSeq));
    t.lse.resize(n * size_t(c_.nHeads));
    t.lateLse.resize(n * size_t(c_.nHeads));
    t.lateOut.resize(n * size_t(g_.qWidth));
  }
  pool_ = std::make_unique<ThreadPool>(std::max(1, c_.threads));
  scale_ = 1.0f / std::sqrt(float(c_.headDim));
}

Worker::~Worker() { stop(); }

void Worker::start() {
  auto* h = static_cast<std::atomic<int32_t>*>(c_.segment);
  h[H_WORKER_PID].store(int32_t(getpid()), std::memory_order_relaxed);
  // Postings made before this worker attached are not ours to run (a stale layout).
  for (int t = 0; t < g_.numTags; t++) {
    const int32_t posted = word(tagBase(t), 0, T_POSTED)->load(std::memory_order_acquire);
    tags_[size_t(t)].consumed = posted;
    tags_[size_t(t)].replied = word(tagBase(t), 0, T_REPLIED)->load(std::memory_order_relaxed);
    word(tagBase(t), 0, T_CONSUMED)->store(posted, std::memory_order_release);
  }
  state_ = kRunning;
  h[H_WORKER_STATE].store(kRunning, std::memory_order_release);
  thread_ = std::thread([this] { loop(); });
}

void Worker::stop() {
  stopping_.store(true);
  futexWake(word(c_.segment, 0, H_POST_COUNT));
  if (thread_.joinable()) thread_.join();
  if (state_ == kRunning) {
    state_ = kStopped;
    word(c_.segment, 0, H_WORKER_STATE)->store(kStopped, std::memory_order_release);
  }
}

WorkerCounters Worker::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {state_.load(), error_, double(spinNs_.load()) * 1e-9, double(computeNs_.load()) * 1e-9, steps_.load(),
          layers_.load()};
}

void Worker::loop() {
  auto* postCount = word(c_.segment, 0, H_POST_COUNT);
  auto* sleeping = word(c_.segment, 0, H_WORKER_SLEEPING);
  const int32_t modelPid = word(c_.segment, 0, H_MODEL_PID)->load(std::memory_order_relaxed);
  try {
    while (!stopping_.load(std::memory_order_relaxed)) {
      const int32_t seen = postCount->load(std::memory_order_acquire);
      if (drain()) continue;
      // Nothing to do: spin on the doorbell, then sleep on it.
      const int64_t t0 = nowNs();
      while (postCount->load(std::memory_order_acquire) == seen && nowNs() - t0 < c_.spinNs) cpuRelax();
      spinNs_ += nowNs() - t0;
      if (postCount->load(std::memory_order_acquire) != seen) continue;
      sleeping->store(1, std::memory_order_seq_cst);
      if (postCount->load(std::memory_order_seq_cst) == seen && !stopping_.load()) futexWait(postCount, seen, kSliceNs);
      sleeping->store(0, std::memory_order_relaxed);
      if (postCount->load(std::memory_order_acquire) == seen && !pidAlive(modelPid)) {
        fail("the model-side process " + std::to_string(modelPid) + " is gone");
        return;
      }
    }
  } catch (const ProtocolError& e) {
    fail(e.what());
  } catch (const std::exception& e) {
    fail(std::string("data plane: ") + e.what());
  }
}

bool Worker::pollOnce() {
  if (state_ == kFailed) return false;
  try {
    drain();
  } catch (const std::exception& e) {
    fail(e.what());
  }
  return state_ != kFailed;
}

bool Worker::drain() {
  bool did = false;
  for (;;) {
    // The oldest pending posting of any micro-batch: the order messages would have arrived in,
    // so a layer's KV is not held behind another micro-batch's later early pass.
    int best = -1;
    int32_t bestOrder = 0;
    for (int t = 0; t < g_.numTags; t++) {
      TagState& s = tags_[size_t(t)];
      const int32_t posted = word(tagBase(t), 0, T_POSTED)->load(std::memory_order_acquire);
      if (posted == s.consumed) continue;
      if (int32_t(posted - s.consumed) > kQueue || int32_t(posted - s.consumed) < 0)
        reject(t, "the model side posted " + std::to_string(posted - s.consumed) + " entries into a queue of " +
                      std::to_string(kQueue));
      const int32_t order =
          reinterpret_cast<const int32_t*>(tagBase(t))[T_QUEUE + kEntryWords * (uint32_t(s.consumed) % kQueue) + 4];
      if (best < 0 || int32_t(order - bestOrder) < 0) {
        best = t;
        bestOrder = order;
      }
    }
    if (best < 0) return did;
    runPosting(best);
    did = true;
  }
}

void Worker::runPosting(int tag) {
  TagState& s = tags_[size_t(tag)];
  char* base = tagBase(tag);
  int32_t entry[kEntryWords];
  std::memcpy(entry, reinterpret_cast<int32_t*>(base) + T_QUEUE + kEntryWords * (uint32_t(s.consumed) % kQueue),
              sizeof entry);
  switch (entry[0]) {
    case kStep:
      onStep(tag, entry);
      break;
    case kQ:
      onQ(tag, entry);
      break;
    case kKv:
      onKv(tag, entry);
      break;
    default:
      reject(tag, "unknown posting kind " + std::to_string(entry[0]));
  }
  s.consumed++;
  word(base, 0, T_CONSUMED)->store(s.consumed, std::memory_order_release);
}

void Worker::reject(int tag, const std::string& what) {
  throw ProtocolError("data plane, micro-batch " + std::to_string(tag) + ": " + what);
}

void Worker::onStep(int tag, const int32_t* e) {
  TagState& s = tags_[size_t(tag)];
  s.prepared = false;
  const int32_t n = e[2], nSeqs = e[3];
  if (n < 1 || n > g_.maxTokens) reject(tag, "STEP of " + std::to_string(n) + " tokens is out of range");
  if (nSeqs < 1 || nSeqs > g_.maxSeqs || nSeqs > n)
    reject(tag, "STEP of " + std::to_string(nSeqs) + " sequences is out of range");
  const char* base = tagBase(tag);
  const size_t mb = size_t(g_.maxBlocksPerSeq);
  // Copied out of the shared slot before they are checked, so the checked values are the used ones.
  int32_t* seqStart = s.seqStart.data();
  std::memcpy(seqStart, base + layout_.seqStart, 4 * size_t(nSeqs + 1));
  std::memcpy(s.ctxEnd.data(), base + layout_.positions, 4 * size_t(n));  // positions, for now
  std::memcpy(s.tables.data(), base + layout_.blockTables, 4 * size_t(nSeqs) * mb);
  if (seqStart[0] != 0 || seqStart[nSeqs] != n) reject(tag, "STEP seqStart must run from 0 to nTokens");
  for (int32_t q = 0; q < nSeqs; q++)
    if (seqStart[q] >= seqStart[q + 1]) reject(tag, "STEP seqStart must increase");
  const int64_t bs = c_.blockSize;
  const int64_t window = c_.slidingWindow;
  // Positions sit in ctxEnd until the ranges are built; ctxEnd = position + 1 afterwards.
  std::vector<int32_t>& pos = s.ctxEnd;
  for (int32_t q = 0; q < nSeqs; q++) {
    const int32_t first = seqStart[q], last = seqStart[q + 1];
    int32_t maxPos = 0;
    for (int32_t t = first; t < last; t++) {
      if (pos[size_t(t)] < 0 || pos[size_t(t)] >= c_.maxContext)
        reject(tag, "STEP position " + std::to_string(pos[size_t(t)]) + " is outside the context");
      maxPos = std::max(maxPos, pos[size_t(t)]);
    }
    const int32_t* table = s.tables.data() + size_t(q) * mb;
    for (int64_t b = 0; b <= maxPos / bs; b++)
      if (table[b] < 0 || table[b] >= c_.numBlocks)
        reject(tag, "STEP block table entry " + std::to_string(b) + " of sequence row " + std::to_string(q) + " = " +
                        std::to_string(table[b]) + " is outside the cache");
    const int32_t split = pos[size_t(first)];
    for (int32_t t = first; t < last; t++) {
      const int32_t p = pos[size_t(t)];
      const int32_t start = window > 0 ? int32_t(std::max<int64_t>(0, p + 1 - window)) : 0;
      const size_t i = size_t(t);
      s.slots[i] = int32_t(table[p / bs] * bs + p % bs);
      s.qSeq[i] = q;
      s.ctxStart[i] = start;
      s.earlyEnd[i] = std::max(start, split);
    }
  }
  for (int32_t t = 0; t < n; t++) {
    s.ctxEnd[size_t(t)] = s.ctxEnd[size_t(t)] + 1;
    s.lateStart[size_t(t)] = s.earlyEnd[size_t(t)];
  }
  s.nTokens = n;
  s.nSeqs = nSeqs;
  s.prepared = true;
  s.earlyLayer = -1;
  steps_++;
}

AttnArgs Worker::args(TagState& s, int layer, int tag, float* out, const int32_t* start, const int32_t* end,
                      float* lse) {
  AttnArgs a{};
  a.out = out;
  a.q = reinterpret_cast<const float*>(tagBase(tag) + layout_.q);
  a.cache = {c_.kCaches[size_t(layer)], c_.vCaches[size_t(layer)], c_.dtype, c_.blockSize, c_.nKvHeads, c_.headDim};
  a.blockTables = s.tables.data();
  a.maxBlocksPerSeq = g_.maxBlocksPerSeq;
  a.qSeq = s.qSeq.data();
  a.ctxStart = start;
  a.ctxEnd = end;
  a.nHeads = c_.nHeads;
  a.scale = scale_;
  a.lse = lse;
  return a;
}

void Worker::onQ(int tag, const int32_t* e) {
  TagState& s = tags_[size_t(tag)];
  const int32_t layer = e[1];
  if (!s.prepared) reject(tag, "Q before STEP");
  if (layer < 0 || layer >= g_.numLayers) reject(tag, "Q for layer " + std::to_string(layer) + " is out of range");
  if (e[2] != s.nTokens) reject(tag, "Q of " + std::to_string(e[2]) + " tokens in a step of " + std::to_string(s.nTokens));
  const int64_t t0 = nowNs();
  // Early q: attention over the keys cached before this step, straight into the reply slot.
  float* out = reinterpret_cast<float*>(tagBase(tag) + layout_.out);
  runner_.run(c_.table, *pool_, args(s, layer, tag, out, s.ctxStart.data(), s.earlyEnd.data(), s.lse.data()),
              s.nTokens);
  s.earlyNs = nowNs() - t0;
  s.earlyLayer = layer;
}

void Worker::onKv(int tag, const int32_t* e) {
  TagState& s = tags_[size_t(tag)];
  const int32_t layer = e[1];
  if (!s.prepared || s.earlyLayer != layer) reject(tag, "KV for layer " + std::to_string(layer) + " before its Q");
  if (e[2] != s.nTokens) reject(tag, "KV of " + std::to_string(e[2]) + " tokens in a step of " + std::to_string(s.nTokens));
  const int64_t t0 = nowNs();
  char* base = tagBase(tag);
  const KvArgs cache{c_.kCaches[size_t(layer)], c_.vCaches[size_t(layer)], c_.dtype, c_.blockSize, c_.nKvHeads,
                     c_.headDim};
  c_.table->kvWrite(cache, reinterpret_cast<const float*>(base + layout_.k),
                    reinterpret_cast<const float*>(base + layout_.v), s.slots.data(), 0, s.nTokens);
  runner_.run(c_.table, *pool_,
              args(s, layer, tag, s.lateOut.data(), s.lateStart.data(), s.ctxEnd.data(), s.lateLse.data()), s.nTokens);
  float* out = reinterpret_cast<float*>(base + layout_.out);
  AttentionRunner::merge(c_.table, *pool_, out, s.lse.data(), s.lateOut.data(), s.lateLse.data(),
                         int64_t(s.nTokens) * c_.nHeads, c_.headDim);
  const int64_t computeNs = nowNs() - t0 + s.earlyNs;
  computeNs_ += computeNs;
  layers_++;
  s.earlyLayer = -1;
  word(base, 0, T_REPLY_LAYER)->store(layer, std::memory_order_relaxed);
  word(base, 0, T_REPLY_MICROS)->store(int32_t(std::min<int64_t>(computeNs / 1000, INT32_MAX)), std::memory_order_relaxed);
  word(base, 0, T_REPLIED)->store(++s.replied, std::memory_order_release);
  auto* replyCount = word(c_.segment, 0, H_REPLY_COUNT);
  replyCount->fetch_add(1, std::memory_order_seq_cst);
  if (word(c_.segment, 0, H_MODEL_SLEEPING)->load(std::memory_order_seq_cst) != 0) futexWake(replyCount);
}

void Worker::fail(const std::string& what) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = what;
  }
  char* msg = static_cast<char*>(c_.segment) + kErrorOffset;
  const size_t n = std::min(what.size(), kErrorBytes - 1);
  std::memcpy(msg, what.data(), n);
  msg[n] = 0;
  state_ = kFailed;
  word(c_.segment, 0, H_WORKER_STATE)->store(kFailed, std::memory_order_seq_cst);
  auto* replyCount = word(c_.segment, 0, H_REPLY_COUNT);
  replyCount->fetch_add(1, std::memory_order_seq_cst);
  futexWake(replyCount);
}

}  // namespace lk::dp
