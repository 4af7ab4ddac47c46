// libFuzzer target: the attention worker's TCP data-plane bridge as hostile peers drive it. Each
// input is split into two byte streams, the front end's (peer 0) and a model worker's (peer 1),
// written into socket pairs the bridge serves as if both had proved the token; the bridge then runs
// until the front end's stream ends or a frame breaks the rules. Whatever the bytes, the bridge must
// reject or compute, never read or write out of bounds, and never hang (run under AddressSanitizer).
// Built and run for a bounded time by test/attention/dataplane-tcp-fuzz.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "dataplane_tcp.h"
#include "kernel_table.h"

using namespace lk::dp;

namespace {

constexpr Geometry kGeometry{2, 8, 4, 4, 16, 8, 2};  // tags, tokens, seqs, blocks/seq, q, kv, layers
constexpr int64_t kBlocks = 6, kBlockSize = 4, kKvHeads = 1, kHeadDim = 8, kHeads = 2;

struct Cache {
  std::vector<float> k[2], v[2];
};

WorkerConfig config(Cache& cache) {
  WorkerConfig c;
  for (int l = 0; l < 2; l++) {
    cache.k[l].assign(size_t(kBlocks * kKvHeads * kBlockSize * kHeadDim), 0.5f);
    cache.v[l].assign(cache.k[l].size(), 0.25f);
    c.kCaches.push_back(cache.k[l].data());
    c.vCaches.push_back(cache.v[l].data());
  }
  c.dtype = lk::kF32;
  c.numBlocks = kBlocks;
  c.blockSize = kBlockSize;
  c.nKvHeads = kKvHeads;
  c.headDim = kHeadDim;
  c.nHeads = kHeads;
  c.maxContext = kGeometry.maxBlocksPerSeq * kBlockSize;
  c.windows = {0, 0};
  c.scales = {0.35f, 0.25f};
  c.softcaps = {0.0f, 5.0f};
  c.threads = 1;
  c.spinNs = 0;
  c.table = lk::table_portable();
  return c;
}

// Writes the stream and closes the writing end, so the bridge sees it end.
int feed(const uint8_t* data, size_t n) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) __builtin_trap();
  // Inputs are small (libFuzzer's default max_len): they fit the socket buffer.
  size_t off = 0;
  while (off < n) {
    const ssize_t w = write(sv[1], data + off, n - off);
    if (w <= 0) break;
    off += size_t(w);
  }
  close(sv[1]);
  return sv[0];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t split = std::min<size_t>(size - 2, size_t(data[0]) | size_t(data[1]) << 8);
  data += 2;
  size -= 2;
  Cache cache;
  TcpBridge bridge(config(cache), kGeometry, "127.0.0.1", std::string(kTokenBytes, 't'));
  bridge.adoptPeer(0, feed(data, split));
  bridge.adoptPeer(1, feed(data + split, size - split));
  bridge.runHere();
  return 0;
}
