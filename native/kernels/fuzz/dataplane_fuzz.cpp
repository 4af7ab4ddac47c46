// libFuzzer target: the attention worker's native data plane as a hostile model side drives it.
// Each input is a series of postings written byte for byte into one micro-batch's slots (queue
// entries, sequence ranges, positions, block tables of both pools, and a few floats of q/k/v), published by
// bumping the posted counter; the worker takes them as its loop would. Whatever the bytes, the
// worker must reject or compute, never read or write outside the segment and the cache (run
// under AddressSanitizer). Built and run for a bounded time by test/attention/dataplane-fuzz.
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "dataplane_client.h"
#include "dataplane_worker.h"
#include "kernel_table.h"

using namespace lk::dp;

namespace {

constexpr Geometry kGeometry{2, 8, 4, 4, 16, 8, 2};  // tags, tokens, seqs, blocks/seq, q, kv, layers
constexpr int64_t kBlocks = 6, kBlockSize = 4, kKvHeads = 1, kHeadDim = 8, kHeads = 2;
// Layer 0 is a window layer whose KV lives in a pool of its own (its tables in the windowTables
// slot), layer 1 a global layer with a soft-cap: the per-layer settings Gemma gives the loop.
constexpr int64_t kWindowBlocks = 3;

struct Fixture {
  std::vector<char> segment;
  std::vector<float> k[2], v[2];
  std::unique_ptr<Worker> worker;
  TagLayout layout;

  Fixture() : segment(segmentBytes(kGeometry) + 64), layout(tagLayout(kGeometry)) {
    Client writer(base(), segmentBytes(kGeometry), kGeometry, 0);  // writes the header
    (void)writer;
    WorkerConfig c;
    c.segment = base();
    c.segmentBytes = segmentBytes(kGeometry);
    for (int l = 0; l < 2; l++) {
      k[l].assign(size_t((l == 0 ? kWindowBlocks : kBlocks) * kKvHeads * kBlockSize * kHeadDim), 0.5f);
      v[l].assign(k[l].size(), 0.25f);
      c.kCaches.push_back(k[l].data());
      c.vCaches.push_back(v[l].data());
    }
    c.dtype = lk::kF32;
    c.numBlocks = kBlocks;
    c.windowBlocks = kWindowBlocks;
    c.blockSize = kBlockSize;
    c.nKvHeads = kKvHeads;
    c.headDim = kHeadDim;
    c.nHeads = kHeads;
    c.maxContext = kGeometry.maxBlocksPerSeq * kBlockSize;
    c.windows = {3, 0};
    c.scales = {0.35f, 0.25f};
    c.softcaps = {0.0f, 5.0f};
    c.threads = 1;
    c.table = lk::table_portable();
    worker = std::make_unique<Worker>(std::move(c));
  }
  char* base() { return reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(segment.data()) + 63) & ~uintptr_t(63)); }
  char* tag(int t) { return base() + kHeaderBytes + size_t(t) * layout.bytes; }
};

// Copies up to `n` input bytes to dst; returns how many it took.
size_t take(const uint8_t*& data, size_t& size, void* dst, size_t n) {
  const size_t m = n < size ? n : size;
  std::memcpy(dst, data, m);
  data += m;
  size -= m;
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture f;
  while (size > 2) {
    const int t = data[0] & 1;
    const int postings = 1 + (data[1] & 3);
    data += 2;
    size -= 2;
    char* tag = f.tag(t);
    // Queue entries (kind, layer, nTokens, nSeqs, order), then the step area, then some of q/k/v.
    take(data, size, tag + 4 * T_QUEUE, 4 * kEntryWords * kQueue);
    take(data, size, tag + f.layout.seqStart, f.layout.q - f.layout.seqStart);
    uint8_t floats = 0;
    take(data, size, &floats, 1);
    take(data, size, tag + f.layout.q, floats);
    auto* posted = word(tag, 0, T_POSTED);
    posted->store(posted->load() + postings);
    if (!f.worker->pollOnce()) break;
  }
  return 0;
}
