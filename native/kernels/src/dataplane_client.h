// The model side of the native data plane: posts a micro-batch's step header, q and k/v straight
// into the segment's slots (gathering the rows and head columns this worker serves), and waits
// for OUT replies by spinning, then sleeping on a futex, inside the calling thread: the engine
// thread waits here, never on the event loop.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "dataplane_layout.h"

namespace lk::dp {

/** The model side's calls on one worker's data plane, whatever carries it (shared memory, TCP). */
class Endpoint {
 public:
  enum class Kind { kShm, kTcp };
  virtual ~Endpoint() = default;
  virtual Kind kind() const = 0;
  virtual const Geometry& geometry() const = 0;
  /**
   * `windowTables` (or null): the sequences' tables in the window layers' own pool, for a worker
   * that keeps one (window-blocks.ts); same shape as `tables`.
   */
  virtual void postStep(int tag, int32_t nTokens, int32_t nSeqs, const int32_t* seqStart, const int32_t* positions,
                        const int32_t* tables, const int32_t* windowTables, int64_t timeoutNs) = 0;
  /** Rows `rows[0..nRows)` of src (rows of srcWidth floats; null: 0..nRows-1), columns [colOff, colOff + width). */
  virtual void postQ(int tag, int32_t layer, const float* q, const int32_t* rows, int32_t nRows, int64_t srcWidth,
                     int64_t colOff, int64_t timeoutNs) = 0;
  virtual void postKv(int tag, int32_t layer, const float* k, const float* v, const int32_t* rows, int32_t nRows,
                      int64_t srcWidth, int64_t colOff, int64_t timeoutNs) = 0;
  /** Whether the micro-batch's last KV has its OUT and it was not taken yet. */
  virtual bool ready(int tag) const = 0;
  /** Scatters the OUT into rows of `out` (rows of dstWidth floats, at colOff); returns compute µs. */
  virtual int32_t take(int tag, float* out, const int32_t* rows, int32_t nRows, int64_t dstWidth, int64_t colOff) = 0;
  /** The worker failed or is gone: the reason, else empty. */
  virtual std::string failure() const = 0;
  virtual double spinSeconds() const = 0;
  virtual int32_t awaiting() const = 0;
  /**
   * Over TCP, the peer the attention worker sends the next KV's OUT to (a model worker running
   * the micro-batch's next slice); shared memory needs none (the OUT is in the segment).
   */
  virtual void routeNextOut(int32_t /*peer*/) {}
  /** Forgets replies this side received and never took (after a failed step was settled). */
  virtual void resync() {}
};

class Client : public Endpoint {
 public:
  Kind kind() const override { return Kind::kShm; }
  /** Writes a fresh header for `g` into the segment (the model side creates it). */
  Client(void* segment, size_t bytes, const Geometry& g, int64_t spinNs);
  struct Attach {};
  /**
   * Another model-side process's view of a segment that already has a header for `g` (a model
   * worker posting the layers of micro-batches whose step the front end posted). The counters
   * live in the segment, so whichever process posts a micro-batch's next layer carries on.
   */
  Client(void* segment, size_t bytes, const Geometry& g, int64_t spinNs, Attach);

  const Geometry& geometry() const override { return g_; }
  void postStep(int tag, int32_t nTokens, int32_t nSeqs, const int32_t* seqStart, const int32_t* positions,
                const int32_t* tables, const int32_t* windowTables, int64_t timeoutNs) override;
  void postQ(int tag, int32_t layer, const float* q, const int32_t* rows, int32_t nRows, int64_t srcWidth,
             int64_t colOff, int64_t timeoutNs) override;
  void postKv(int tag, int32_t layer, const float* k, const float* v, const int32_t* rows, int32_t nRows,
              int64_t srcWidth, int64_t colOff, int64_t timeoutNs) override;
  bool ready(int tag) const override;
  int32_t take(int tag, float* out, const int32_t* rows, int32_t nRows, int64_t dstWidth, int64_t colOff) override;
  /**
   * take() once the OUT is ready, spinning for it up to this client's spin budget; -1 (nothing
   * taken) if it was not ready by then: the caller waits on (waitAny) and takes as usual.
   */
  int32_t spinTake(int tag, float* out, const int32_t* rows, int32_t nRows, int64_t dstWidth, int64_t colOff);
  std::string failure() const override;
  double spinSeconds() const override { return double(spinNs_) * 1e-9; }
  int32_t awaiting() const override;

  /**
   * Waits until one of `clients` has a ready reply: returns its index, -1 after timeoutNs, or
   * -(2 + i) when client i's worker failed or died.
   */
  static int waitAny(Client* const* clients, int n, int64_t timeoutNs, uint32_t tagMask = ~0u);

  /**
   * Once the worker has taken every posting of `tag` and answered every KV, marks its replies
   * taken, so a step that failed half way can be posted again from its STEP. False on timeout.
   */
  bool settleTag(int tag, int64_t timeoutNs);

 private:
  char* tagBase(int tag) const { return base_ + kHeaderBytes + size_t(tag) * layout_.bytes; }
  int32_t* reserveEntry(int tag, int64_t timeoutNs);
  void publish(int tag, int32_t* entry);
  void checkTag(int tag) const;

  char* base_;
  Geometry g_;
  TagLayout layout_;
  int64_t spinNs_ = 0;
  int64_t spinBudgetNs_;
  std::atomic<int32_t>* counter(int tag, int index) const { return word(tagBase(tag), 0, index); }
  bool readyMasked(uint32_t tagMask) const;
  mutable int64_t lastPidCheck_ = 0;
};

}  // namespace lk::dp
