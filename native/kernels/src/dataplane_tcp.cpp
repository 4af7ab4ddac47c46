#include "dataplane_tcp.h"

#include "socket_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace lk::dp {

using net::noDelay;
using net::readFull;
using net::setNonBlocking;
using net::writeAll;

namespace {

// A frame's payload must arrive within this once its header has (a peer that stalls mid-frame
// is treated as gone).
constexpr int64_t kFrameNs = 5'000'000'000;
constexpr int kAcceptMs = 30'000;

// A peer's socket failed (closed, reset, stalled mid-frame), as opposed to a frame that broke the rules.
struct PeerGone : std::runtime_error {
  using std::runtime_error::runtime_error;
};


}  // namespace

int64_t payloadBytes(const Geometry& g, int32_t kind, int32_t nTokens, int32_t nSeqs, int32_t layer) {
  if (nTokens < 1 || nTokens > g.maxTokens) return -1;
  switch (kind) {
    case kStep:
      if (nSeqs < 1 || nSeqs > g.maxSeqs || nSeqs > nTokens || (layer != 0 && layer != 1)) return -1;
      return 4 * (int64_t(nSeqs) + 1 + nTokens + (1 + int64_t(layer)) * int64_t(nSeqs) * g.maxBlocksPerSeq);
    case kQ:
      return 4 * int64_t(nTokens) * g.qWidth;
    case kKv:
      return 8 * int64_t(nTokens) * g.kvWidth;
    case kOut:
      return 4 * int64_t(nTokens) * g.qWidth;
    default:
      return -1;
  }
}

// ---- worker side ------------------------------------------------------------------------------

TcpBridge::TcpBridge(WorkerConfig c, const Geometry& g, const std::string& host, const std::string& token)
    : g_(g), token_(token), spinNs_(c.spinNs) {
  if (token_.size() != kTokenBytes) throw std::runtime_error("data-plane token must be 32 bytes");
  store_.resize(segmentBytes(g) + 64);
  void* seg = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(store_.data()) + 63) & ~uintptr_t(63));
  client_ = std::make_unique<Client>(seg, segmentBytes(g), g, 0);
  c.segment = seg;
  c.segmentBytes = segmentBytes(g);
  worker_ = std::make_unique<Worker>(std::move(c));
  int64_t most = 0;
  for (int32_t k : {int32_t(kStep), int32_t(kQ), int32_t(kKv)})
    most = std::max(most, payloadBytes(g, k, g.maxTokens, std::min(g.maxSeqs, g.maxTokens), k == kStep ? 1 : 0));
  payload_.resize(size_t(most));
  out_.resize(size_t(g.maxTokens) * size_t(g.qWidth));
  stepTokens_.assign(size_t(g.numTags), 0);
  stepLayer_.assign(size_t(g.numTags), 0);
  replyTo_.assign(size_t(g.numTags), 0);
  needStep_.assign(size_t(g.numTags), 1);
  peers_.assign(kMaxPeers, -1);
  listenFd_ = net::listenOn(host, port_, "data plane", true);
}

TcpBridge::~TcpBridge() {
  stop();
  if (listenFd_ >= 0) close(listenFd_);
  for (int fd : peers_)
    if (fd >= 0) close(fd);
  for (const Pending& p : pending_) close(p.fd);
}

void TcpBridge::start() {
  // The bridge thread runs each posting itself (Worker::pollOnce) right after reading it: one
  // thread, no hand-off, nothing spinning beside it on the worker's core.
  thread_ = std::thread([this] { loop(); });
}

void TcpBridge::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  worker_->stop();
}

WorkerCounters TcpBridge::counters() const {
  WorkerCounters c = worker_->counters();
  std::lock_guard<std::mutex> lock(mu_);
  if (!error_.empty() && c.state != kFailed) {
    c.state = kFailed;
    c.error = error_;
  }
  return c;
}

void TcpBridge::fail(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (error_.empty()) error_ = why;
}

// New connections are read without blocking (a stranger that connects and says nothing cannot
// hold the exchange up): each has 5 s to prove the token and name its peer id.
void TcpBridge::acceptPending() {
  for (;;) {
    const int fd = accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    if (pending_.size() >= 8) {
      close(fd);
      continue;
    }
    pending_.push_back({fd, nowNs() + 5'000'000'000, 0, {}});
  }
}

void TcpBridge::readPending(Pending& p) {
  const ssize_t r = recv(p.fd, p.buf + p.got, sizeof p.buf - p.got, MSG_DONTWAIT);
  if (r > 0) p.got += size_t(r);
  const bool gone = r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
  if (p.got < sizeof p.buf) {
    if (gone || nowNs() > p.deadline) {
      close(p.fd);
      p.fd = -1;
    }
    return;
  }
  int32_t peer = -1;
  std::memcpy(&peer, p.buf + kTokenBytes, 4);
  if (std::memcmp(p.buf, token_.data(), kTokenBytes) != 0 || peer < 0 || peer >= kMaxPeers) {
    close(p.fd);  // not one of our model side's peers: keep listening for them
    p.fd = -1;
    return;
  }
  noDelay(p.fd);
  // A peer that connects again (a replaced model worker) takes over its id.
  if (peers_[size_t(peer)] >= 0) close(peers_[size_t(peer)]);
  peers_[size_t(peer)] = p.fd;
  anyPeer_ = true;
  p.fd = -1;
}

void TcpBridge::adoptPeer(int peer, int fd) {
  if (peer < 0 || peer >= kMaxPeers || peers_[size_t(peer)] >= 0) throw std::range_error("data plane: peer taken");
  setNonBlocking(fd);
  peers_[size_t(peer)] = fd;
  anyPeer_ = true;
}

void TcpBridge::dropPeer(int peer) {
  close(peers_[size_t(peer)]);
  peers_[size_t(peer)] = -1;
}

void TcpBridge::readFrame(int peer) {
  const int fd = peers_[size_t(peer)];
  FrameHead h{};
  std::string why = readFull(fd, &h, sizeof h, kFrameNs);
  if (!why.empty()) throw PeerGone(why);
  if (h.magic != kFrameMagic) throw std::runtime_error("data-plane frame without its magic");
  if (h.tag < 0 || h.tag >= g_.numTags) throw std::runtime_error("data-plane frame for micro-batch " + std::to_string(h.tag));
  if (h.kind == kSettle) {
    if (h.bytes != 0) throw std::runtime_error("a data-plane SETTLE with a payload");
    settle(h.tag, peer);
    return;
  }
  const int64_t want = payloadBytes(g_, h.kind, h.nTokens, h.nSeqs, h.kind == kStep ? h.layer : 0);
  if (h.kind == kOut || want < 0 || h.bytes != want)
    throw std::runtime_error("data-plane frame of kind " + std::to_string(h.kind) + " with " + std::to_string(h.bytes) +
                             " bytes for " + std::to_string(h.nTokens) + " tokens is malformed");
  if (h.kind == kKv && (h.nSeqs < 0 || h.nSeqs >= kMaxPeers))
    throw std::runtime_error("a data-plane KV for reply peer " + std::to_string(h.nSeqs));
  // A model worker's first layer of a step: the front end posted its STEP before the model worker
  // could start, so read the front end's socket until it is in (bounded by its frame timeout).
  const int64_t t0 = nowNs();
  while (peer != 0 && h.kind != kStep && needStep_[size_t(h.tag)]) {
    if (peers_[0] < 0) throw std::runtime_error("a model worker posted a layer with no front end connected");
    pollfd p{peers_[0], POLLIN, 0};
    if (poll(&p, 1, 10) > 0) handle(0);
    else if (nowNs() - t0 > kFrameNs) throw std::runtime_error("a model worker posted a layer of a step never posted");
  }
  why = readFull(fd, payload_.data(), size_t(want), kFrameNs);
  if (!why.empty()) throw PeerGone(why);
  const int64_t bound = kFrameNs;
  const auto* p = reinterpret_cast<const int32_t*>(payload_.data());
  switch (h.kind) {
    case kStep: {
      const int32_t* tables = p + h.nSeqs + 1 + h.nTokens;
      const int32_t* windowTables = h.layer == 1 ? tables + int64_t(h.nSeqs) * g_.maxBlocksPerSeq : nullptr;
      client_->postStep(h.tag, h.nTokens, h.nSeqs, p, p + h.nSeqs + 1, tables, windowTables, bound);
      stepTokens_[size_t(h.tag)] = h.nTokens;
      needStep_[size_t(h.tag)] = 0;
      break;
    }
    case kQ:
      client_->postQ(h.tag, h.layer, reinterpret_cast<const float*>(p), nullptr, h.nTokens, g_.qWidth, 0, bound);
      break;
    default: {
      const auto* k = reinterpret_cast<const float*>(p);
      client_->postKv(h.tag, h.layer, k, k + int64_t(h.nTokens) * g_.kvWidth, nullptr, h.nTokens, g_.kvWidth, 0, bound);
      stepLayer_[size_t(h.tag)] = h.layer;
      replyTo_[size_t(h.tag)] = h.nSeqs;
      if (h.layer == g_.numLayers - 1) needStep_[size_t(h.tag)] = 1;
    }
  }
}

void TcpBridge::settle(int tag, int peer) {
  // Postings are run as they are read, so what is left of the micro-batch is an OUT no peer took
  // (its model worker was lost): settling drops it, and the next posting must be a STEP.
  const bool ok = client_->settleTag(tag, kFrameNs);
  needStep_[size_t(tag)] = 1;
  FrameHead h{kFrameMagic, kSettled, tag, 0, 0, ok ? 1 : 0, 0};
  iovec iov{&h, sizeof h};
  const std::string why = writeAll(peers_[size_t(peer)], &iov, 1, kFrameNs);
  if (!why.empty()) throw std::runtime_error(why);
}

void TcpBridge::handle(int peer) {
  try {
    readFrame(peer);
  } catch (const PeerGone& e) {
    // A model worker that went away is the front end's to replace; the front end going is the end.
    if (peer == 0) throw std::runtime_error(e.what());
    dropPeer(peer);
    return;
  }
  if (!worker_->pollOnce()) throw std::runtime_error(worker_->counters().error);
  sendReplies();
}

void TcpBridge::sendReplies() {
  for (int t = 0; t < g_.numTags; t++) {
    if (!client_->ready(t)) continue;
    const int peer = replyTo_[size_t(t)];
    // Its peer is not connected (a model worker being replaced): the OUT waits, and a SETTLE drops it.
    if (peers_[size_t(peer)] < 0) continue;
    const int32_t n = stepTokens_[size_t(t)];
    const int32_t micros = client_->take(t, out_.data(), nullptr, n, g_.qWidth, 0);
    FrameHead h{kFrameMagic, kOut, t, stepLayer_[size_t(t)], n, micros, int32_t(4 * int64_t(n) * g_.qWidth)};
    iovec iov[2] = {{&h, sizeof h}, {out_.data(), size_t(h.bytes)}};
    const std::string why = writeAll(peers_[size_t(peer)], iov, 2, kFrameNs);
    if (why.empty()) continue;
    if (peer == 0) throw std::runtime_error(why);
    dropPeer(peer);
  }
}

void TcpBridge::loop() {
  const int64_t acceptBy = nowNs() + int64_t(kAcceptMs) * 1000000;
  pollfd fds[1 + kMaxPeers + 8];
  int ids[1 + kMaxPeers + 8];
  try {
    while (!stopping_) {
      // The listening socket, the connections still proving themselves, then the peers (the front
      // end first, so a STEP is read before the layers that follow it).
      int n = 0;
      fds[n] = {listenFd_, POLLIN, 0};
      ids[n++] = -1;
      for (size_t i = 0; i < pending_.size(); i++) {
        fds[n] = {pending_[i].fd, POLLIN, 0};
        ids[n++] = -2 - int(i);
      }
      for (int peer = 0; peer < kMaxPeers; peer++)
        if (peers_[size_t(peer)] >= 0) {
          fds[n] = {peers_[size_t(peer)], POLLIN, 0};
          ids[n++] = peer;
        }
      // Spin on the sockets for the budget, then block in poll (a slice at a time, to see stop).
      const int64_t t0 = nowNs();
      int r = 0;
      while ((r = poll(fds, nfds_t(n), 0)) == 0 && nowNs() - t0 < spinNs_) cpuRelax();
      if (r == 0) r = poll(fds, nfds_t(n), pending_.empty() ? 50 : 10);
      if (!anyPeer_ && nowNs() > acceptBy) {
        fail("no model side connected to the data plane within 30 s");
        break;
      }
      if (r < 0) continue;
      for (int i = 0; i < n; i++) {
        if (ids[i] >= -1 && !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        if (ids[i] == -1) acceptPending();
        else if (ids[i] <= -2) readPending(pending_[size_t(-2 - ids[i])]);
        else if (peers_[size_t(ids[i])] == fds[i].fd) {
          // Still readable? (a model worker's frame may have made the bridge read the front end's already)
          pollfd q{fds[i].fd, POLLIN, 0};
          if (poll(&q, 1, 0) > 0) handle(ids[i]);
        }
      }
      const size_t before = pending_.size();
      pending_.erase(std::remove_if(pending_.begin(), pending_.end(), [](const Pending& p) { return p.fd < 0; }),
                     pending_.end());
      // A peer that just joined may be owed an OUT that waited for it.
      if (pending_.size() != before) sendReplies();
    }
  } catch (const std::exception& e) {
    fail(e.what());
  }
  for (int fd : peers_)
    if (fd >= 0) shutdown(fd, SHUT_RDWR);
}

// ---- model side -------------------------------------------------------------------------------

TcpClient::TcpClient(const std::string& host, int port, const std::string& token, const Geometry& g, int64_t spinNs,
                     int64_t timeoutNs, int32_t peer)
    : g_(g), spinBudgetNs_(spinNs) {
  if (token.size() != kTokenBytes) throw std::runtime_error("data-plane token must be 32 bytes");
  if (peer < 0 || peer >= kMaxPeers) throw std::range_error("data plane: peer id out of range");
  routed_ = peer != 0;
  // Host names too (a worker named by --attention-worker-addrs host1:7001): resolved here, once.
  fd_ = net::connectTo(host, port, timeoutNs, "data plane", true);
  iovec iov[2] = {{const_cast<char*>(token.data()), kTokenBytes}, {&peer, sizeof peer}};
  const std::string why = writeAll(fd_, iov, 2, timeoutNs);
  if (!why.empty()) {
    close(fd_);
    throw std::runtime_error("data plane: " + why);
  }
  int64_t most = 0;
  for (int32_t k : {int32_t(kStep), int32_t(kQ), int32_t(kKv)})
    most = std::max(most, payloadBytes(g, k, g.maxTokens, std::min(g.maxSeqs, g.maxTokens), k == kStep ? 1 : 0));
  sendBuf_.resize(size_t(most));
  out_.assign(size_t(g.numTags), std::vector<float>(size_t(g.maxTokens) * size_t(g.qWidth)));
  expect_.assign(size_t(g.numTags), 0);
  taken_.assign(size_t(g.numTags), 0);
  replied_.assign(size_t(g.numTags), 0);
  settled_.assign(size_t(g.numTags), 0);
  settledOk_.assign(size_t(g.numTags), 0);
  micros_.assign(size_t(g.numTags), 0);
}

TcpClient::~TcpClient() {
  if (fd_ >= 0) close(fd_);
}

void TcpClient::checkTag(int tag) const {
  if (tag < 0 || tag >= g_.numTags)
    throw std::range_error("data plane: micro-batch " + std::to_string(tag) + " is outside the " +
                           std::to_string(g_.numTags) + " configured");
}

void TcpClient::send(const FrameHead& h, const void* payload, size_t bytes, int64_t timeoutNs) {
  if (!failed_.empty()) throw std::runtime_error("data plane: " + failed_);
  FrameHead head = h;
  iovec iov[2] = {{&head, sizeof head}, {const_cast<void*>(payload), bytes}};
  const std::string why = writeAll(fd_, iov, 2, timeoutNs);
  if (!why.empty()) {
    failed_ = why;
    throw std::runtime_error("data plane: " + why);
  }
}

void TcpClient::postStep(int tag, int32_t nTokens, int32_t nSeqs, const int32_t* seqStart, const int32_t* positions,
                         const int32_t* tables, const int32_t* windowTables, int64_t timeoutNs) {
  checkTag(tag);
  const int32_t withWindow = windowTables ? 1 : 0;
  const int64_t bytes = payloadBytes(g_, kStep, nTokens, nSeqs, withWindow);
  if (bytes < 0) throw std::range_error("data plane: a step's counts exceed the configured limits");
  auto* p = reinterpret_cast<int32_t*>(sendBuf_.data());
  std::memcpy(p, seqStart, 4 * size_t(nSeqs + 1));
  std::memcpy(p + nSeqs + 1, positions, 4 * size_t(nTokens));
  const size_t tableWords = size_t(nSeqs) * size_t(g_.maxBlocksPerSeq);
  std::memcpy(p + nSeqs + 1 + nTokens, tables, 4 * tableWords);
  if (windowTables) std::memcpy(p + nSeqs + 1 + nTokens + tableWords, windowTables, 4 * tableWords);
  send({kFrameMagic, kStep, tag, withWindow, nTokens, nSeqs, int32_t(bytes)}, p, size_t(bytes), timeoutNs);
}

void TcpClient::postQ(int tag, int32_t layer, const float* q, const int32_t* rows, int32_t nRows, int64_t srcWidth,
                      int64_t colOff, int64_t timeoutNs) {
  checkTag(tag);
  const int64_t bytes = payloadBytes(g_, kQ, nRows, 1);
  if (bytes < 0) throw std::range_error("data plane: Q row count out of range");
  auto* dst = reinterpret_cast<float*>(sendBuf_.data());
  for (int32_t r = 0; r < nRows; r++)
    std::memcpy(dst + int64_t(r) * g_.qWidth, q + int64_t(rows ? rows[r] : r) * srcWidth + colOff, 4 * size_t(g_.qWidth));
  send({kFrameMagic, kQ, tag, layer, nRows, 0, int32_t(bytes)}, dst, size_t(bytes), timeoutNs);
}

void TcpClient::postKv(int tag, int32_t layer, const float* k, const float* v, const int32_t* rows, int32_t nRows,
                       int64_t srcWidth, int64_t colOff, int64_t timeoutNs) {
  checkTag(tag);
  const int64_t bytes = payloadBytes(g_, kKv, nRows, 1);
  if (bytes < 0) throw std::range_error("data plane: KV row count out of range");
  auto* dst = reinterpret_cast<float*>(sendBuf_.data());
  const int64_t w = g_.kvWidth;
  for (int32_t r = 0; r < nRows; r++) {
    const int64_t src = int64_t(rows ? rows[r] : r) * srcWidth + colOff;
    std::memcpy(dst + int64_t(r) * w, k + src, 4 * size_t(w));
    std::memcpy(dst + (int64_t(nRows) + r) * w, v + src, 4 * size_t(w));
  }
  expect_[size_t(tag)]++;
  send({kFrameMagic, kKv, tag, layer, nRows, nextReplyTo_, int32_t(bytes)}, dst, size_t(bytes), timeoutNs);
  nextReplyTo_ = 0;
}

void TcpClient::routeNextOut(int32_t peer) {
  if (peer < 0 || peer >= kMaxPeers) throw std::range_error("data plane: reply peer out of range");
  nextReplyTo_ = peer;
}

void TcpClient::resync() {
  progress();
  for (size_t t = 0; t < taken_.size(); t++) {
    taken_[t] = replied_[t];
    expect_[t] = replied_[t];
  }
}

bool TcpClient::settleTag(int tag, int64_t timeoutNs) {
  checkTag(tag);
  const int32_t before = settled_[size_t(tag)];
  send({kFrameMagic, kSettle, tag, 0, 0, 0, 0}, nullptr, 0, timeoutNs);
  const int64_t t0 = nowNs();
  while (settled_[size_t(tag)] == before) {
    if (!failed_.empty() || nowNs() - t0 > timeoutNs) return false;
    pollfd p{fd_, POLLIN, 0};
    poll(&p, 1, 1);
    progress();
  }
  // What this side received of the micro-batch and never took is void.
  taken_[size_t(tag)] = replied_[size_t(tag)];
  expect_[size_t(tag)] = replied_[size_t(tag)];
  return settledOk_[size_t(tag)] != 0;
}

void TcpClient::progress() {
  while (failed_.empty()) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return;
    FrameHead h{};
    std::string why = readFull(fd_, &h, sizeof h, kFrameNs);
    const bool settled = why.empty() && h.magic == kFrameMagic && h.kind == kSettled && h.tag >= 0 &&
                         h.tag < g_.numTags && h.bytes == 0;
    if (settled) {
      settled_[size_t(h.tag)]++;
      settledOk_[size_t(h.tag)] = h.nSeqs == 1;
      continue;
    }
    if (why.empty()) {
      const bool ok = h.magic == kFrameMagic && h.kind == kOut && h.tag >= 0 && h.tag < g_.numTags &&
                      h.bytes == payloadBytes(g_, kOut, h.nTokens, 1);
      if (!ok) why = "a malformed OUT frame from the attention worker";
    }
    if (why.empty()) why = readFull(fd_, out_[size_t(h.tag)].data(), size_t(h.bytes), kFrameNs);
    if (!why.empty()) {
      failed_ = why;
      return;
    }
    replied_[size_t(h.tag)]++;
    micros_[size_t(h.tag)] = h.nSeqs;
  }
}

// The front end's socket pairs each OUT with the KV it posted, so an OUT still on its way from a
// step that failed is never taken for the next step's (it lands before the new KV's). A model
// worker's socket counts OUTs as they arrive: the OUT of a layer one replica posted goes to the
// replica running the next slice, and stale ones are dropped when the front end resumes (resync).
bool TcpClient::ready(int tag) const {
  const size_t t = size_t(tag);
  if (routed_) return replied_[t] > taken_[t];
  return expect_[t] != taken_[t] && replied_[t] - expect_[t] >= 0;
}

int32_t TcpClient::awaiting() const {
  int32_t n = 0;
  for (size_t t = 0; t < expect_.size(); t++) n += expect_[t] > taken_[t];
  return n;
}

int32_t TcpClient::take(int tag, float* out, const int32_t* rows, int32_t nRows, int64_t dstWidth, int64_t colOff) {
  checkTag(tag);
  if (!ready(tag)) throw std::logic_error("data plane: no OUT is ready for micro-batch " + std::to_string(tag));
  if (nRows < 0 || nRows > g_.maxTokens) throw std::range_error("data plane: OUT row count out of range");
  const float* src = out_[size_t(tag)].data();
  const int64_t w = g_.qWidth;
  for (int32_t r = 0; r < nRows; r++)
    std::memcpy(out + int64_t(rows ? rows[r] : r) * dstWidth + colOff, src + int64_t(r) * w, 4 * size_t(w));
  taken_[size_t(tag)] = routed_ ? replied_[size_t(tag)] : expect_[size_t(tag)];
  return micros_[size_t(tag)];
}

std::string TcpClient::failure() const {
  // A closed socket is seen here without reading a frame (the front end posts only STEPs and
  // would otherwise learn of a lost worker from its control channel, an event-loop turn away).
  if (failed_.empty() && fd_ >= 0) {
    pollfd p{fd_, POLLIN, 0};
    char c;
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR) || recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0))
      failed_ = "the attention worker closed the data-plane connection";
  }
  return failed_;
}

int TcpClient::waitAny(TcpClient* const* clients, int n, int64_t timeoutNs, uint32_t tagMask) {
  const int64_t t0 = nowNs();
  pollfd fds[64];  // a service has at most a few workers; no allocation per wait
  if (n > 64) throw std::range_error("data plane: at most 64 TCP clients in one wait");
  // Time spent spinning is counted on the first client, as the shared-memory wait does.
  const auto spun = [&] {
    if (n > 0) clients[0]->spinNs_ += std::min(nowNs() - t0, clients[0]->spinBudgetNs_);
  };
  for (;;) {
    // Every socket is read before any is looked at: a caller that needs all of them (a model
    // worker taking one layer's OUT from every attention worker) must see the later ones move too.
    for (int i = 0; i < n; i++) clients[i]->progress();
    for (int i = 0; i < n; i++) {
      TcpClient* c = clients[i];
      int found = -1;
      for (int t = 0; t < c->g_.numTags && found == -1; t++)
        if ((tagMask >> (t & 31) & 1) && c->ready(t)) found = i;
      if (found == -1 && !c->failed_.empty()) found = -(2 + i);
      if (found != -1) {
        spun();
        return found;
      }
    }
    const int64_t waited = nowNs() - t0;
    if (waited >= timeoutNs) {
      spun();
      return -1;
    }
    if (n > 0 && waited < clients[0]->spinBudgetNs_) {
      exchangeSpinStep(waited);
      continue;
    }
    for (int i = 0; i < n; i++) fds[i] = {clients[i]->fd_, POLLIN, 0};
    poll(fds, nfds_t(n), int(std::min<int64_t>((timeoutNs - waited) / 1000000 + 1, 20)));
  }
}

}  // namespace lk::dp
