#include "dataplane_client.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace lk::dp {

namespace {

// Sleep slices: short when several workers are awaited (one futex word cannot cover them all),
// and the pid of a silent worker is checked between them.
constexpr int64_t kSliceNs = 20'000'000;
constexpr int64_t kMultiSliceNs = 200'000;
constexpr int64_t kPidCheckNs = 10'000'000;

void gatherRows(float* dst, const float* src, const int32_t* rows, int32_t nRows, int64_t srcWidth, int64_t colOff,
                int64_t width) {
  for (int32_t r = 0; r < nRows; r++)
    std::memcpy(dst + int64_t(r) * width, src + int64_t(rows ? rows[r] : r) * srcWidth + colOff, 4 * size_t(width));
}

}  // namespace

Client::Client(void* segment, size_t bytes, const Geometry& g, int64_t spinNs)
    : base_(static_cast<char*>(segment)), g_(g), layout_(tagLayout(g)), spinBudgetNs_(spinNs) {
  if (bytes < segmentBytes(g)) throw std::runtime_error("data-plane segment is smaller than its layout");
  std::memset(base_, 0, kHeaderBytes);
  auto* h = reinterpret_cast<int32_t*>(base_);
  h[H_LAYOUT] = kLayout;
  h[H_TAGS] = g.numTags;
  h[H_MAX_TOKENS] = g.maxTokens;
  h[H_MAX_SEQS] = g.maxSeqs;
  h[H_MAX_BLOCKS] = g.maxBlocksPerSeq;
  h[H_Q_WIDTH] = g.qWidth;
  h[H_KV_WIDTH] = g.kvWidth;
  h[H_LAYERS] = g.numLayers;
  h[H_MODEL_PID] = int32_t(getpid());
  for (int t = 0; t < g.numTags; t++) std::memset(tagBase(t), 0, 256);
  // The magic last: a worker that opens the segment sees a whole header or none.
  word(base_, 0, H_MAGIC)->store(kMagic, std::memory_order_release);
}

Client::Client(void* segment, size_t bytes, const Geometry& g, int64_t spinNs, Attach)
    : base_(static_cast<char*>(segment)), g_(g), layout_(tagLayout(g)), spinBudgetNs_(spinNs) {
  if (bytes < segmentBytes(g)) throw std::runtime_error("data-plane segment is smaller than its layout");
  const auto* h = reinterpret_cast<const int32_t*>(base_);
  if (word(base_, 0, H_MAGIC)->load(std::memory_order_acquire) != kMagic || h[H_LAYOUT] != kLayout)
    throw std::runtime_error("data-plane segment has no header of layout " + std::to_string(kLayout));
  if (h[H_TAGS] != g.numTags || h[H_MAX_TOKENS] != g.maxTokens || h[H_MAX_SEQS] != g.maxSeqs ||
      h[H_MAX_BLOCKS] != g.maxBlocksPerSeq || h[H_Q_WIDTH] != g.qWidth || h[H_KV_WIDTH] != g.kvWidth ||
      h[H_LAYERS] != g.numLayers)
    throw std::runtime_error("data-plane segment's geometry differs from the one asked for");
}

void Client::checkTag(int tag) const {
  if (tag < 0 || tag >= g_.numTags)
    throw std::range_error("data plane: micro-batch " + std::to_string(tag) + " is outside the " +
                           std::to_string(g_.numTags) + " configured");
}

// A free queue entry for the tag's next posting; waits (backpressure) while the worker is a full
// queue behind, up to timeoutNs.
int32_t* Client::reserveEntry(int tag, int64_t timeoutNs) {
  checkTag(tag);
  char* base = tagBase(tag);
  const int32_t posted = counter(tag, T_POSTED)->load(std::memory_order_relaxed);
  auto* consumed = word(base, 0, T_CONSUMED);
  if (int32_t(posted - consumed->load(std::memory_order_acquire)) >= kQueue) {
    const int64_t t0 = nowNs();
    while (int32_t(posted - consumed->load(std::memory_order_acquire)) >= kQueue) {
      const std::string why = failure();
      if (!why.empty()) throw std::runtime_error("data plane: " + why);
      if (nowNs() - t0 > timeoutNs)
        throw std::runtime_error("data plane: the attention worker took no posting of micro-batch " +
                                 std::to_string(tag) + " within " + std::to_string(timeoutNs / 1000000) + " ms");
      timespec ts{0, 20'000};
      nanosleep(&ts, nullptr);
    }
  }
  return reinterpret_cast<int32_t*>(base) + T_QUEUE + kEntryWords * (uint32_t(posted) % kQueue);
}

void Client::publish(int tag, int32_t* entry) {
  char* base = tagBase(tag);
  auto* postCount = word(base_, 0, H_POST_COUNT);
  // One producer: the count read here is the one the increment below moves on from.
  entry[4] = postCount->load(std::memory_order_relaxed);
  auto* posted = word(base, 0, T_POSTED);
  posted->store(posted->load(std::memory_order_relaxed) + 1, std::memory_order_release);
  postCount->fetch_add(1, std::memory_order_seq_cst);
  if (word(base_, 0, H_WORKER_SLEEPING)->load(std::memory_order_seq_cst) != 0) futexWake(postCount);
}

void Client::postStep(int tag, int32_t nTokens, int32_t nSeqs, const int32_t* seqStart, const int32_t* positions,
                      const int32_t* tables, const int32_t* windowTables, int64_t timeoutNs) {
  if (nTokens < 1 || nTokens > g_.maxTokens || nSeqs < 1 || nSeqs > g_.maxSeqs)
    throw std::range_error("data plane: a step of " + std::to_string(nTokens) + " tokens and " +
                           std::to_string(nSeqs) + " sequences exceeds the segment's limits");
  int32_t* e = reserveEntry(tag, timeoutNs);
  char* base = tagBase(tag);
  std::memcpy(base + layout_.seqStart, seqStart, 4 * size_t(nSeqs + 1));
  std::memcpy(base + layout_.positions, positions, 4 * size_t(nTokens));
  std::memcpy(base + layout_.blockTables, tables, 4 * size_t(nSeqs) * size_t(g_.maxBlocksPerSeq));
  if (windowTables)
    std::memcpy(base + layout_.windowTables, windowTables, 4 * size_t(nSeqs) * size_t(g_.maxBlocksPerSeq));
  e[0] = kStep;
  e[1] = windowTables ? 1 : 0;
  e[2] = nTokens;
  e[3] = nSeqs;
  publish(tag, e);
}

void Client::postQ(int tag, int32_t layer, const float* q, const int32_t* rows, int32_t nRows, int64_t srcWidth,
                   int64_t colOff, int64_t timeoutNs) {
  if (nRows < 1 || nRows > g_.maxTokens) throw std::range_error("data plane: Q row count out of range");
  int32_t* e = reserveEntry(tag, timeoutNs);
  gatherRows(reinterpret_cast<float*>(tagBase(tag) + layout_.q), q, rows, nRows, srcWidth, colOff, g_.qWidth);
  e[0] = kQ;
  e[1] = layer;
  e[2] = nRows;
  e[3] = 0;
  publish(tag, e);
}

void Client::postKv(int tag, int32_t layer, const float* k, const float* v, const int32_t* rows, int32_t nRows,
                    int64_t srcWidth, int64_t colOff, int64_t timeoutNs) {
  if (nRows < 1 || nRows > g_.maxTokens) throw std::range_error("data plane: KV row count out of range");
  int32_t* e = reserveEntry(tag, timeoutNs);
  char* base = tagBase(tag);
  gatherRows(reinterpret_cast<float*>(base + layout_.k), k, rows, nRows, srcWidth, colOff, g_.kvWidth);
  gatherRows(reinterpret_cast<float*>(base + layout_.v), v, rows, nRows, srcWidth, colOff, g_.kvWidth);
  e[0] = kKv;
  e[1] = layer;
  e[2] = nRows;
  e[3] = 0;
  auto* expect = counter(tag, T_EXPECT);
  expect->store(expect->load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  publish(tag, e);
}

bool Client::ready(int tag) const {
  // Acquire: a model worker that takes another process's reply sees what that process wrote
  // before it posted (the micro-batch's activations), through the worker's release of the reply.
  const int32_t expect = counter(tag, T_EXPECT)->load(std::memory_order_acquire);
  return expect != counter(tag, T_TAKEN)->load(std::memory_order_relaxed) &&
         int32_t(counter(tag, T_REPLIED)->load(std::memory_order_acquire) - expect) >= 0;
}

int32_t Client::awaiting() const {
  int32_t n = 0;
  for (int t = 0; t < g_.numTags; t++)
    n += counter(t, T_EXPECT)->load(std::memory_order_relaxed) != counter(t, T_TAKEN)->load(std::memory_order_relaxed);
  return n;
}

bool Client::settleTag(int tag, int64_t timeoutNs) {
  checkTag(tag);
  const int64_t t0 = nowNs();
  for (;;) {
    const int32_t posted = counter(tag, T_POSTED)->load(std::memory_order_acquire);
    const int32_t expect = counter(tag, T_EXPECT)->load(std::memory_order_acquire);
    const bool drained = counter(tag, T_CONSUMED)->load(std::memory_order_acquire) == posted &&
                         counter(tag, T_REPLIED)->load(std::memory_order_acquire) == expect;
    // A failed or stopped worker takes nothing more: its postings are void.
    if (drained || !failure().empty()) {
      counter(tag, T_TAKEN)->store(expect, std::memory_order_release);
      return true;
    }
    if (nowNs() - t0 > timeoutNs) return false;
    timespec ts{0, 50'000};
    nanosleep(&ts, nullptr);
  }
}

int32_t Client::take(int tag, float* out, const int32_t* rows, int32_t nRows, int64_t dstWidth, int64_t colOff) {
  checkTag(tag);
  if (!ready(tag)) throw std::logic_error("data plane: no OUT is ready for micro-batch " + std::to_string(tag));
  if (nRows < 0 || nRows > g_.maxTokens) throw std::range_error("data plane: OUT row count out of range");
  const char* base = tagBase(tag);
  const float* src = reinterpret_cast<const float*>(base + layout_.out);
  const int64_t w = g_.qWidth;
  for (int32_t r = 0; r < nRows; r++)
    std::memcpy(out + int64_t(rows ? rows[r] : r) * dstWidth + colOff, src + int64_t(r) * w, 4 * size_t(w));
  counter(tag, T_TAKEN)->store(counter(tag, T_EXPECT)->load(std::memory_order_relaxed), std::memory_order_relaxed);
  return word(base, 0, T_REPLY_MICROS)->load(std::memory_order_relaxed);
}

int32_t Client::spinTake(int tag, float* out, const int32_t* rows, int32_t nRows, int64_t dstWidth, int64_t colOff) {
  checkTag(tag);
  spinNs_ += exchangeSpin(spinBudgetNs_, [&] { return ready(tag); });
  return ready(tag) ? take(tag, out, rows, nRows, dstWidth, colOff) : -1;
}

std::string Client::failure() const {
  const int32_t state = word(base_, 0, H_WORKER_STATE)->load(std::memory_order_acquire);
  if (state == kFailed) {
    const char* msg = base_ + kErrorOffset;
    return std::string(msg, strnlen(msg, kErrorBytes - 1));
  }
  if (state == kStopped) return "the attention worker stopped its data plane";
  const int64_t now = nowNs();
  if (state == kRunning && now - lastPidCheck_ >= kPidCheckNs) {
    lastPidCheck_ = now;
    const int32_t pid = word(base_, 0, H_WORKER_PID)->load(std::memory_order_relaxed);
    if (!pidAlive(pid)) return "attention worker process " + std::to_string(pid) + " is gone";
  }
  return "";
}

bool Client::readyMasked(uint32_t tagMask) const {
  // The mask names micro-batches 0..31; all of them (~0) also covers any beyond.
  for (int t = 0; t < g_.numTags; t++)
    if ((t < 32 ? (tagMask >> t & 1u) != 0 : tagMask == ~0u) && ready(t)) return true;
  return false;
}

int Client::waitAny(Client* const* clients, int n, int64_t timeoutNs, uint32_t tagMask) {
  const int64_t t0 = nowNs();
  auto readyIndex = [&]() -> int {
    for (int i = 0; i < n; i++)
      if (clients[i]->readyMasked(tagMask)) return i;
    return -1;
  };
  int i = readyIndex();
  if (i >= 0) return i;
  // The spin never outlasts the wait itself.
  const int64_t spin = n > 0 ? std::min(clients[0]->spinBudgetNs_, timeoutNs) : 0;
  const int64_t spun = exchangeSpin(spin, [&] { return (i = readyIndex()) >= 0; });
  if (n > 0) clients[0]->spinNs_ += spun;
  if (i >= 0) return i;
  for (;;) {
    // Sleep on the doorbell of a client that has a reply outstanding.
    Client* c = nullptr;
    for (int j = 0; j < n && !c; j++)
      if (clients[j]->awaiting() > 0) c = clients[j];
    if (!c) c = clients[0];
    auto* doorbell = word(c->base_, 0, H_REPLY_COUNT);
    auto* sleeping = word(c->base_, 0, H_MODEL_SLEEPING);
    const int32_t seen = doorbell->load(std::memory_order_seq_cst);
    if ((i = readyIndex()) >= 0) return i;
    for (int j = 0; j < n; j++)
      if (!clients[j]->failure().empty()) return -(2 + j);
    const int64_t left = timeoutNs - (nowNs() - t0);
    if (left <= 0) return -1;
    // A count, not a flag: model workers of one rotation may sleep on the same doorbell.
    sleeping->fetch_add(1, std::memory_order_seq_cst);
    if (doorbell->load(std::memory_order_seq_cst) == seen)
      futexWait(doorbell, seen, std::min(left, n > 1 ? kMultiSliceNs : kSliceNs));
    sleeping->fetch_sub(1, std::memory_order_relaxed);
  }
}

}  // namespace lk::dp
