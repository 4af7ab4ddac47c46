// The model plane over TCP: model workers on other hosts. Each process of a rotation (the front end,
// peer 0, and model worker r, peer 1 + r) keeps its own copy of the plane segment (model-plane.ts),
// and what one process writes that another must see travels as a frame that writes it there: byte
// ranges of the segment, then 32-bit stores, then a doorbell rung. It is RDMA's write-with-immediate
// done by a thread: the receiver copies the ranges into place straight from the socket, publishes the
// stores with release order after them, and wakes whoever sleeps on the doorbell, so a waiting
// process sees the data the moment it sees the counter move, exactly as on shared memory, and no
// JavaScript runs on the receiving side. A frame can carry a guard (a counter it must not be behind,
// e.g. the micro-batch's step number), so a frame of a step that was since given up is dropped.
//
// Frame: Head, nRegions × Region, nStores × Store, then the regions' bytes in order. Every field is
// checked against the segment before a byte lands (checkFrame); a malformed frame closes that link.
// Connections are authenticated by a token (given over the control channel), then name the
// connecting peer and the segment's size; the acceptor answers one byte (kAccepted or a refusal).
// Each process sends to a peer over the connection it made to that peer, except to peer 0 (the front
// end), which connects to the replicas and is answered over that same connection. Two replicas each
// connect to the other, so each pair has one connection per direction and no race between them.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace lk::pn {

constexpr int32_t kMagic = 0x4e504c4d;  // "MLPN"
constexpr int32_t kVersion = 1;
constexpr int kMaxPeers = 64;
constexpr int kMaxRegions = 64;
constexpr int kMaxStores = 64;
constexpr size_t kTokenBytes = 32;
/** The acceptor's answer to a handshake. */
enum Answer : uint8_t { kAccepted = 1, kBadToken = 2, kBadShape = 3, kBadPeer = 4 };

struct Head {
  int32_t magic, version, nRegions, nStores;
  /**
   * -1, or the offset of a counter: the frame applies unless the counter is already past guardVal
   * (compared as serial numbers, so the counter may wrap).
   */
  int32_t guardOff, guardVal;
  /** -1, or a doorbell word (its sleeper count next to it) to move on and wake after the stores. */
  int32_t ringOff;
  /** Bytes of the regions, in total. */
  int32_t payload;
};
struct Region {
  int32_t off, len;
};
struct Store {
  int32_t off, val;
};
struct Hello {
  char token[kTokenBytes];
  int32_t peer;
  int32_t reserved;
  int64_t segmentBytes;
};

/** "" when the header's magic, version and counts are sound (checked before the tables are read). */
std::string checkHead(const Head& h);
/** "" when the frame fits a segment of `bytes`, else what is wrong with it (checkHead included). */
std::string checkFrame(const Head& h, const Region* regions, const Store* stores, int64_t bytes);

struct Stats {
  int64_t framesIn = 0, bytesIn = 0, framesOut = 0, bytesOut = 0, stale = 0, malformed = 0;
};

class PlaneNet {
 public:
  /** `base`: this process's copy of the segment (kept mapped by the caller); `self`: its peer id. */
  PlaneNet(void* base, int64_t bytes, const std::string& token, int32_t self);
  ~PlaneNet();
  /** Listens on host (port 0: any) for peers; returns the port. Once. */
  int listen(const std::string& host, int port = 0);
  /** Connects to a peer's listener (replacing any link to that peer). Throws with the reason. */
  void connect(int32_t peer, const std::string& host, int port, int64_t timeoutNs);
  void drop(int32_t peer);
  /** When the link to `peer` fails or closes: store val at off, then ring ringOff (-1: none). */
  void onLoss(int32_t peer, int32_t off, int32_t val, int32_t ringOff);
  /** Writes the regions of this process's copy, the stores and the ring to `peer`'s copy. Throws on failure. */
  void send(int32_t peer, const Region* regions, int nRegions, const Store* stores, int nStores, int32_t guardOff,
            int32_t guardVal, int32_t ringOff, int64_t timeoutNs);
  /** Whether a connection to or from `peer` is open. */
  bool linked(int32_t peer) const;
  Stats stats() const;
  /** The last link that failed or broke the rules, and why ("" if none). */
  std::string error() const;
  /** The fuzzer: applies the frames arriving on fd on this thread until it closes or errs; the reason. */
  std::string serveHere(int fd);

 private:
  struct Link {
    int fd;
    int32_t peer;
    std::mutex sendMu;
    explicit Link(int f, int32_t p) : fd(f), peer(p) {}
    ~Link();
  };
  struct Pending {
    int fd;
    int64_t deadline;
    size_t got;
    Hello hello;
  };
  struct Loss {
    int32_t off = -1, val = 0, ringOff = -1;
  };
  void loop();
  void acceptPending();
  void readPending(Pending& p);
  /** A connection this side made (the send link to `peer`). */
  void install(int32_t peer, int fd);
  /** A connection a peer made: read from; also the send link when the peer is 0 (the front end). */
  void adoptInbound(int32_t peer, int fd);
  void lost(const std::shared_ptr<Link>& link, const std::string& why);
  /** Reads and applies one frame; "" or why the link must close. */
  std::string readFrame(int fd);
  void ring(int32_t off);
  void wakeLoop();

  char* base_;
  int64_t bytes_;
  std::string token_;
  int32_t self_;
  int listenFd_ = -1;
  int wakeFd_ = -1;
  /** Per peer, the link this side sends on. */
  std::vector<std::shared_ptr<Link>> links_;
  /** Connections peers made, read from (peer 0's is its send link too). */
  std::vector<std::shared_ptr<Link>> inbound_;
  std::vector<Loss> loss_;
  std::vector<Pending> pending_;
  std::vector<char> scratch_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::string error_;
  std::atomic<int64_t> framesIn_{0}, bytesIn_{0}, framesOut_{0}, bytesOut_{0}, stale_{0}, malformed_{0};
};

}  // namespace lk::pn
