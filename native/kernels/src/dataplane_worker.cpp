#include "dataplane_worker.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "read_ahead_policy.h"

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
  const size_t layers = c_.kCaches.size();
  if (c_.windows.size() != layers || c_.scales.size() != layers || c_.softcaps.size() != layers)
    throw std::runtime_error("data plane: per-layer windows, scales and soft-caps need one entry per layer");
  for (size_t l = 0; l < layers; l++) {
    const int32_t w = c_.windows[l];
    if (w < 0) throw std::runtime_error("data plane: layer " + std::to_string(l) + "'s window is negative");
    if (!(c_.scales[l] > 0) || !std::isfinite(c_.scales[l]) || !(c_.softcaps[l] >= 0) || !std::isfinite(c_.softcaps[l]))
      throw std::runtime_error("data plane: layer " + std::to_string(l) + "'s scale or soft-cap is out of range");
    auto at = std::find(windows_.begin(), windows_.end(), w);
    if (at == windows_.end()) at = windows_.insert(windows_.end(), w);
    rangeOf_.push_back(int32_t(at - windows_.begin()));
    if (inWindowPool(int(l))) widestPoolWindow_ = std::max(widestPoolWindow_, w);
  }
  if (!c_.sinks.empty() && c_.sinks.size() != layers * size_t(c_.nHeads))
    throw std::runtime_error("data plane: attention sinks need one logit per layer and head");
  for (float s : c_.sinks)
    if (!std::isfinite(s)) throw std::runtime_error("data plane: an attention sink is not finite");
  if (c_.windowBlocks > 0 && widestPoolWindow_ == 0)
    throw std::runtime_error("data plane: a window pool without a windowed layer");
  tags_.resize(size_t(g_.numTags));
  for (auto& t : tags_) {
    const size_t n = size_t(g_.maxTokens);
    const size_t tableWords = size_t(g_.maxSeqs) * size_t(g_.maxBlocksPerSeq);
    t.seqStart.resize(size_t(g_.maxSeqs) + 1);
    t.slots.resize(n);
    t.windowSlots.resize(c_.windowBlocks > 0 ? n : 0);
    t.qSeq.resize(n);
    t.ctxEnd.resize(n);
    t.ranges.resize(windows_.size());
    for (Ranges& r : t.ranges) {
      r.ctxStart.resize(n);
      r.earlyEnd.resize(n);
      r.lateStart.resize(n);
    }
    t.tables.resize(tableWords);
    t.windowTables.resize(c_.windowBlocks > 0 ? tableWords : 0);
    t.lse.resize(n * size_t(c_.nHeads));
    t.lateLse.resize(n * size_t(c_.nHeads));
    t.lateOut.resize(n * size_t(g_.qWidth));
  }
  pool_ = std::make_unique<ThreadPool>(std::max(1, c_.threads));
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
      spinNs_ += exchangeSpin(c_.spinNs, [&] { return postCount->load(std::memory_order_acquire) != seen; });
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
  // The layer word says whether the window-pool tables were filled: exactly when there is a pool.
  const bool withWindow = e[1] == 1;
  if (e[1] != 0 && e[1] != 1) reject(tag, "STEP window-table flag " + std::to_string(e[1]) + " is not 0 or 1");
  if (withWindow != (c_.windowBlocks > 0))
    reject(tag, withWindow ? "STEP carries window-pool tables but this worker keeps no window pool"
                           : "STEP lacks the window-pool tables this worker's window layers read");
  const char* base = tagBase(tag);
  const size_t mb = size_t(g_.maxBlocksPerSeq);
  // Copied out of the shared slot before they are checked, so the checked values are the used ones.
  int32_t* seqStart = s.seqStart.data();
  std::memcpy(seqStart, base + layout_.seqStart, 4 * size_t(nSeqs + 1));
  std::memcpy(s.ctxEnd.data(), base + layout_.positions, 4 * size_t(n));  // positions, for now
  std::memcpy(s.tables.data(), base + layout_.blockTables, 4 * size_t(nSeqs) * mb);
  if (withWindow) std::memcpy(s.windowTables.data(), base + layout_.windowTables, 4 * size_t(nSeqs) * mb);
  if (seqStart[0] != 0 || seqStart[nSeqs] != n) reject(tag, "STEP seqStart must run from 0 to nTokens");
  for (int32_t q = 0; q < nSeqs; q++)
    if (seqStart[q] >= seqStart[q + 1]) reject(tag, "STEP seqStart must increase");
  const int64_t bs = c_.blockSize;
  // Positions sit in ctxEnd until the ranges are built; ctxEnd = position + 1 afterwards.
  std::vector<int32_t>& pos = s.ctxEnd;
  for (int32_t q = 0; q < nSeqs; q++) {
    const int32_t first = seqStart[q], last = seqStart[q + 1];
    int32_t maxPos = 0, minPos = INT32_MAX;
    for (int32_t t = first; t < last; t++) {
      if (pos[size_t(t)] < 0 || pos[size_t(t)] >= c_.maxContext)
        reject(tag, "STEP position " + std::to_string(pos[size_t(t)]) + " is outside the context");
      maxPos = std::max(maxPos, pos[size_t(t)]);
      minPos = std::min(minPos, pos[size_t(t)]);
    }
    checkTables(tag, s, q, minPos, maxPos, withWindow);
    const int32_t* table = s.tables.data() + size_t(q) * mb;
    const int32_t* windowTable = withWindow ? s.windowTables.data() + size_t(q) * mb : nullptr;
    const int32_t split = pos[size_t(first)];
    for (int32_t t = first; t < last; t++) {
      const int32_t p = pos[size_t(t)];
      const size_t i = size_t(t);
      s.slots[i] = int32_t(table[p / bs] * bs + p % bs);
      if (windowTable) s.windowSlots[i] = int32_t(windowTable[p / bs] * bs + p % bs);
      s.qSeq[i] = q;
      for (size_t r = 0; r < windows_.size(); r++) {
        const int64_t w = windows_[r];
        const int32_t start = w > 0 ? int32_t(std::max<int64_t>(0, p + 1 - w)) : 0;
        s.ranges[r].ctxStart[i] = start;
        s.ranges[r].earlyEnd[i] = s.ranges[r].lateStart[i] = std::max(start, split);
      }
    }
  }
  for (int32_t t = 0; t < n; t++) s.ctxEnd[size_t(t)] = s.ctxEnd[size_t(t)] + 1;
  s.nTokens = n;
  s.nSeqs = nSeqs;
  s.prepared = true;
  s.earlyLayer = -1;
  steps_++;
}

void Worker::checkTables(int tag, const TagState& s, int32_t q, int32_t minPos, int32_t maxPos, bool withWindow) {
  const int64_t bs = c_.blockSize;
  const size_t mb = size_t(g_.maxBlocksPerSeq);
  auto check = [&](const int32_t* table, int64_t from, int64_t blocks, const char* pool) {
    for (int64_t b = from; b <= maxPos / bs; b++)
      if (table[b] < 0 || table[b] >= blocks)
        reject(tag, std::string("STEP ") + pool + " entry " + std::to_string(b) + " of sequence row " +
                        std::to_string(q) + " = " + std::to_string(table[b]) + " is outside the cache");
  };
  check(s.tables.data() + size_t(q) * mb, 0, c_.numBlocks, "block table");
  // The window pool's tables hold −1 below the window's reach: only the blocks a window layer
  // reads (from the earliest token's window start) must be real blocks of that pool.
  if (withWindow)
    check(s.windowTables.data() + size_t(q) * mb, std::max<int64_t>(0, int64_t(minPos) + 1 - widestPoolWindow_) / bs,
          c_.windowBlocks, "window-pool table");
}

KvArgs Worker::cache(int layer) const {
  KvArgs c{c_.kCaches[size_t(layer)], c_.vCaches[size_t(layer)], c_.dtype, c_.blockSize, c_.nKvHeads, c_.headDim};
  if (c_.dtype == kI8) {
    c.kScale = c_.kScales[size_t(layer)];
    c.vScale = c_.vScales[size_t(layer)];
  }
  return c;
}

AttnArgs Worker::args(TagState& s, int layer, int tag, float* out, const int32_t* start, const int32_t* end,
                      float* lse) {
  AttnArgs a{};
  a.out = out;
  a.q = reinterpret_cast<const float*>(tagBase(tag) + layout_.q);
  const bool pooled = inWindowPool(layer);
  a.cache = cache(layer);
  a.blockTables = pooled ? s.windowTables.data() : s.tables.data();
  a.maxBlocksPerSeq = g_.maxBlocksPerSeq;
  a.qSeq = s.qSeq.data();
  a.ctxStart = start;
  a.ctxEnd = end;
  a.nHeads = c_.nHeads;
  a.scale = c_.scales[size_t(layer)];
  a.softcap = c_.softcaps[size_t(layer)];
  a.readAhead = readAhead();
  a.readAheadBf16Dot = readAheadBf16Dot();
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
  const Ranges& r = s.ranges[size_t(rangeOf_[size_t(layer)])];
  runner_.run(c_.table, *pool_, args(s, layer, tag, out, r.ctxStart.data(), r.earlyEnd.data(), s.lse.data()),
              s.nTokens);
  s.earlyNs = nowNs() - t0;
  s.earlyLayer = layer;
}

void Worker::onKv(int tag, const int32_t* e) {
  TagState& s = tags_[size_t(tag)];
  const int32_t layer = e[1];
  // The range first: after a STEP no Q is pending (earlyLayer −1), and a KV naming layer −1 would
  // otherwise pass the order check below.
  if (layer < 0 || layer >= g_.numLayers) reject(tag, "KV for layer " + std::to_string(layer) + " is out of range");
  if (!s.prepared || s.earlyLayer != layer) reject(tag, "KV for layer " + std::to_string(layer) + " before its Q");
  if (e[2] != s.nTokens) reject(tag, "KV of " + std::to_string(e[2]) + " tokens in a step of " + std::to_string(s.nTokens));
  const int64_t t0 = nowNs();
  char* base = tagBase(tag);
  const int32_t* slots = inWindowPool(layer) ? s.windowSlots.data() : s.slots.data();
  c_.table->kvWrite(cache(layer), reinterpret_cast<const float*>(base + layout_.k),
                    reinterpret_cast<const float*>(base + layout_.v), slots, 0, s.nTokens);
  const Ranges& r = s.ranges[size_t(rangeOf_[size_t(layer)])];
  float* out = reinterpret_cast<float*>(base + layout_.out);
  // One token a sequence (a step of decode tokens): each token's late range is the one key it has
  // just written, folded straight into the early pass's output.
  if (s.nSeqs == s.nTokens) {
    AttentionRunner::appendKeys(c_.table, *pool_,
                                args(s, layer, tag, out, r.lateStart.data(), s.ctxEnd.data(), s.lse.data()), slots,
                                s.nTokens);
  } else {
    const AttnArgs late = args(s, layer, tag, s.lateOut.data(), r.lateStart.data(), s.ctxEnd.data(), s.lateLse.data());
    runner_.run(c_.table, *pool_, late, s.nTokens);
    AttentionRunner::merge(c_.table, *pool_, out, s.lse.data(), s.lateOut.data(), s.lateLse.data(),
                           int64_t(s.nTokens) * c_.nHeads, c_.headDim);
  }
  if (!c_.sinks.empty())
    AttentionRunner::sinks(*pool_, out, s.lse.data(), c_.sinks.data() + size_t(layer) * size_t(c_.nHeads), s.nTokens,
                           c_.nHeads, c_.headDim);
  const int64_t computeNs = nowNs() - t0 + s.earlyNs;
  computeNs_ += computeNs;
  layers_++;
  s.earlyLayer = -1;
  word(base, 0, T_REPLY_LAYER)->store(layer, std::memory_order_relaxed);
  s.unreportedNs += computeNs;
  const int64_t micros = std::min<int64_t>(s.unreportedNs / 1000, INT32_MAX);
  s.unreportedNs -= micros * 1000;
  word(base, 0, T_REPLY_MICROS)->store(int32_t(micros), std::memory_order_relaxed);
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
