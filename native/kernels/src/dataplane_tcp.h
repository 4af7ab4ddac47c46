// The native data plane over TCP, for attention workers on other hosts. The same postings and
// replies as over shared memory, as frames on a socket of their own beside the authenticated
// control channel: the model side writes each with one gathered send (header and tensor, from a
// preallocated buffer), the worker side's bridge thread reads and checks each frame (kind, counts,
// exact payload size) before it reads the payload, hands it to a Worker loop on a private segment
// (the same checks and kernels as the shared-memory path), and sends each OUT back the same way.
// Each socket is authenticated by a token the worker gave the model side over the control channel,
// followed by the peer's id: 0 for the front end (the engine), 1 + r for model worker r, which posts
// the layers of the slices it runs on a socket of its own. A KV names the peer its OUT goes to (the
// model worker running the micro-batch's next slice), so the exchange never passes through the front
// end. Postings of one micro-batch form one causal chain across the sockets (STEP from the front
// end, then each layer from whichever replica runs it, after that replica received the previous
// OUT); the bridge keeps it by reading the front end's socket first whenever a model worker's frame
// needs a STEP that has not been read yet.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dataplane_client.h"
#include "dataplane_worker.h"

namespace lk::dp {

constexpr int32_t kFrameMagic = 0x4650444c;  // "LDPF"
constexpr int32_t kOut = 4;
/** Front end → worker: drop what is left of a failed micro-batch (it starts again from its STEP). */
constexpr int32_t kSettle = 5;
/** Worker → that peer: the micro-batch is settled (nSeqs word: 1 if drained in time). */
constexpr int32_t kSettled = 6;
constexpr size_t kTokenBytes = 32;
constexpr int kMaxPeers = 64;

/**
 * A frame's header: magic, kind, tag, layer, nTokens, nSeqs, payload bytes. The nSeqs word is a
 * STEP's sequence count, a KV's reply peer, an OUT's compute µs. A STEP's layer word is 1 when its
 * payload carries window-pool tables after the global ones.
 */
struct FrameHead {
  int32_t magic, kind, tag, layer, nTokens, nSeqs, bytes;
};

/** The exact payload of a frame with these counts (and layer word), or -1 when they are out of range. */
int64_t payloadBytes(const Geometry& g, int32_t kind, int32_t nTokens, int32_t nSeqs, int32_t layer = 0);

/**
 * The worker side: listens on one port for the model side's peers (the front end and its model
 * workers, each proving the token), and bridges their frames to a Worker loop.
 */
class TcpBridge {
 public:
  /** `c` without its segment fields; listens on host:0 at once (throws on failure). */
  TcpBridge(WorkerConfig c, const Geometry& g, const std::string& host, const std::string& token);
  ~TcpBridge();
  int port() const { return port_; }
  void start();
  void stop();
  WorkerCounters counters() const;
  /** The fuzzer: serves `fd` as peer `peer`, as if it had connected and proved the token. */
  void adoptPeer(int peer, int fd);
  /** The fuzzer: runs the bridge's loop on this thread until its front end goes or it fails. */
  void runHere() { loop(); }

 private:
  void loop();
  /** A connection that has not proved the token and named its peer id yet. */
  struct Pending {
    int fd;
    int64_t deadline;
    size_t got;
    char buf[kTokenBytes + 4];
  };
  void acceptPending();
  void readPending(Pending& p);
  /** Reads, checks and posts one frame of `peer`, then runs the worker and sends replies. */
  void handle(int peer);
  void readFrame(int peer);
  void settle(int tag, int peer);
  void dropPeer(int peer);
  void sendReplies();
  void fail(const std::string& why);

  Geometry g_;
  std::vector<char> store_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<Worker> worker_;
  std::string token_;
  int64_t spinNs_;
  int listenFd_ = -1, port_ = 0;
  /** Socket per peer id, -1 when that peer is not connected. */
  std::vector<int> peers_;
  std::vector<Pending> pending_;
  bool anyPeer_ = false;
  std::vector<char> payload_;
  std::vector<float> out_;
  std::vector<int32_t> stepTokens_, stepLayer_;
  /** Per micro-batch: the peer its next OUT goes to, and whether its next posting must be a STEP. */
  std::vector<int32_t> replyTo_;
  std::vector<uint8_t> needStep_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::string error_;
};

/** The model side of a TCP data plane: the Client calls, over a socket. */
class TcpClient : public Endpoint {
 public:
  /** `peer`: 0 for the front end, 1 + r for model worker r. */
  TcpClient(const std::string& host, int port, const std::string& token, const Geometry& g, int64_t spinNs,
            int64_t timeoutNs, int32_t peer = 0);
  ~TcpClient() override;
  Kind kind() const override { return Kind::kTcp; }
  const Geometry& geometry() const override { return g_; }
  void postStep(int tag, int32_t nTokens, int32_t nSeqs, const int32_t* seqStart, const int32_t* positions,
                const int32_t* tables, const int32_t* windowTables, int64_t timeoutNs) override;
  void postQ(int tag, int32_t layer, const float* q, const int32_t* rows, int32_t nRows, int64_t srcWidth,
             int64_t colOff, int64_t timeoutNs) override;
  void postKv(int tag, int32_t layer, const float* k, const float* v, const int32_t* rows, int32_t nRows,
              int64_t srcWidth, int64_t colOff, int64_t timeoutNs) override;
  bool ready(int tag) const override;
  int32_t take(int tag, float* out, const int32_t* rows, int32_t nRows, int64_t dstWidth, int64_t colOff) override;
  std::string failure() const override;
  double spinSeconds() const override { return double(spinNs_) * 1e-9; }
  int32_t awaiting() const override;
  void routeNextOut(int32_t peer) override;
  void resync() override;
  /** Asks the worker to settle the micro-batch and waits for its answer (false: not in time). */
  bool settleTag(int tag, int64_t timeoutNs);

  /** As Client::waitAny; `tagMask`: only those micro-batches count as ready. */
  static int waitAny(TcpClient* const* clients, int n, int64_t timeoutNs, uint32_t tagMask = ~0u);

 private:
  /** Reads every complete OUT frame that has arrived, without blocking for a new one. */
  void progress();
  void send(const FrameHead& h, const void* payload, size_t bytes, int64_t timeoutNs);
  void checkTag(int tag) const;

  Geometry g_;
  int fd_ = -1;
  int64_t spinBudgetNs_;
  int64_t spinNs_ = 0;
  std::vector<char> sendBuf_;
  std::vector<std::vector<float>> out_;
  /** Per micro-batch: KVs posted here, OUTs received, OUTs taken, settles answered. */
  std::vector<int32_t> expect_, replied_, taken_, settled_, micros_;
  /** Per micro-batch: whether the worker's last SETTLED said it drained in time. */
  std::vector<uint8_t> settledOk_;
  int32_t nextReplyTo_ = 0;
  /** A model worker's socket (peer > 0): OUTs come for layers other replicas posted. */
  bool routed_ = false;
  mutable std::string failed_;
};

}  // namespace lk::dp
