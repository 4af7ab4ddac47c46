#include "plane_net.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "dataplane_layout.h"
#include "socket_io.h"

namespace lk::pn {

namespace {

// Once a frame's header has arrived its tables and bytes must follow within this (a peer that
// stalls mid-frame is treated as gone); a connection must prove the token within kHelloNs.
constexpr int64_t kFrameNs = 5'000'000'000;
constexpr int64_t kHelloNs = 5'000'000'000;
constexpr int kPollMs = 100;

std::atomic<int32_t>* wordAt(char* base, int32_t off) { return reinterpret_cast<std::atomic<int32_t>*>(base + off); }

bool aligned(int32_t off, int64_t bytes, int64_t span) { return off >= 0 && off % 4 == 0 && off + span <= bytes; }

}  // namespace

std::string checkHead(const Head& h) {
  if (h.magic != kMagic) return "not a model-plane frame (bad magic)";
  if (h.version != kVersion) return "model-plane frame version " + std::to_string(h.version) + ", this build speaks 1";
  if (h.nRegions < 0 || h.nRegions > kMaxRegions) return "region count out of range";
  if (h.nStores < 0 || h.nStores > kMaxStores) return "store count out of range";
  return "";
}

std::string checkFrame(const Head& h, const Region* regions, const Store* stores, int64_t bytes) {
  if (std::string bad = checkHead(h); !bad.empty()) return bad;
  if (h.payload < 0 || h.payload > bytes) return "payload larger than the segment";
  if (h.guardOff != -1 && !aligned(h.guardOff, bytes, 4)) return "guard word outside the segment";
  if (h.ringOff != -1 && !aligned(h.ringOff, bytes, 8)) return "doorbell outside the segment";
  int64_t sum = 0;
  for (int i = 0; i < h.nRegions; i++) {
    const Region& r = regions[i];
    if (r.off < 0 || r.len < 0 || int64_t(r.off) + r.len > bytes)
      return "region " + std::to_string(i) + " outside the segment";
    sum += r.len;
  }
  if (sum != h.payload) return "the regions' lengths do not add up to the payload";
  for (int i = 0; i < h.nStores; i++)
    if (!aligned(stores[i].off, bytes, 4)) return "store " + std::to_string(i) + " outside the segment";
  return "";
}

PlaneNet::Link::~Link() { close(fd); }

PlaneNet::PlaneNet(void* base, int64_t bytes, const std::string& token, int32_t self)
    : base_(static_cast<char*>(base)), bytes_(bytes), token_(token), self_(self) {
  if (token_.size() != kTokenBytes) throw std::runtime_error("model plane: the token must be 32 bytes");
  if (self < 0 || self >= kMaxPeers) throw std::range_error("model plane: peer id out of range");
  if (bytes <= 0 || bytes > INT32_MAX) throw std::range_error("model plane: segment size out of range");
  links_.resize(kMaxPeers);
  loss_.resize(kMaxPeers);
  scratch_.resize(1 << 16);
  wakeFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeFd_ < 0) throw std::runtime_error(std::string("model plane: eventfd: ") + std::strerror(errno));
  thread_ = std::thread([this] { loop(); });
}

PlaneNet::~PlaneNet() {
  stopping_ = true;
  wakeLoop();
  if (thread_.joinable()) thread_.join();
  if (listenFd_ >= 0) close(listenFd_);
  for (const Pending& p : pending_) close(p.fd);
  close(wakeFd_);
}

void PlaneNet::wakeLoop() {
  const uint64_t one = 1;
  (void)!write(wakeFd_, &one, sizeof one);
}

int PlaneNet::listen(const std::string& host, int port) {
  std::lock_guard<std::mutex> g(mu_);
  if (listenFd_ >= 0) throw std::runtime_error("model plane: already listening");
  listenFd_ = net::listenOn(host, port, "model plane", true);
  wakeLoop();
  return port;
}

void PlaneNet::connect(int32_t peer, const std::string& host, int port, int64_t timeoutNs) {
  if (peer < 0 || peer >= kMaxPeers || peer == self_) throw std::range_error("model plane: peer id out of range");
  const int fd = net::connectTo(host, port, timeoutNs, "model plane", true);
  Hello h{};
  std::memcpy(h.token, token_.data(), kTokenBytes);
  h.peer = self_;
  h.segmentBytes = bytes_;
  iovec iov{&h, sizeof h};
  std::string why = net::writeAll(fd, &iov, 1, timeoutNs);
  uint8_t answer = 0;
  if (why.empty()) why = net::readFull(fd, &answer, 1, timeoutNs);
  if (why.empty() && answer != kAccepted)
    why = answer == kBadToken   ? "refused: wrong token"
          : answer == kBadShape ? "refused: the peer's plane has another size (another model or configuration)"
                                : "refused: peer id";
  if (!why.empty()) {
    close(fd);
    throw std::runtime_error("model plane: peer " + std::to_string(peer) + " at " + host + ":" +
                             std::to_string(port) + ": " + why);
  }
  install(peer, fd);
}

void PlaneNet::install(int32_t peer, int fd) {
  {
    std::lock_guard<std::mutex> g(mu_);
    links_[size_t(peer)] = std::make_shared<Link>(fd, peer);
  }
  wakeLoop();
}

void PlaneNet::adoptInbound(int32_t peer, int fd) {
  {
    std::lock_guard<std::mutex> g(mu_);
    auto link = std::make_shared<Link>(fd, peer);
    inbound_.push_back(link);
    if (peer == 0) links_[0] = link;
  }
  wakeLoop();
}

void PlaneNet::drop(int32_t peer) {
  if (peer < 0 || peer >= kMaxPeers) return;
  std::shared_ptr<Link> old;
  {
    std::lock_guard<std::mutex> g(mu_);
    old.swap(links_[size_t(peer)]);
  }
  if (old) shutdown(old->fd, SHUT_RDWR);
  wakeLoop();
}

void PlaneNet::onLoss(int32_t peer, int32_t off, int32_t val, int32_t ringOff) {
  if (peer < 0 || peer >= kMaxPeers) throw std::range_error("model plane: peer id out of range");
  if (!aligned(off, bytes_, 4) || (ringOff != -1 && !aligned(ringOff, bytes_, 8)))
    throw std::range_error("model plane: loss store outside the segment");
  std::lock_guard<std::mutex> g(mu_);
  loss_[size_t(peer)] = Loss{off, val, ringOff};
}

bool PlaneNet::linked(int32_t peer) const {
  if (peer < 0 || peer >= kMaxPeers) return false;
  std::lock_guard<std::mutex> g(mu_);
  if (links_[size_t(peer)]) return true;
  for (const auto& l : inbound_)
    if (l->peer == peer) return true;
  return false;
}

Stats PlaneNet::stats() const {
  Stats s;
  s.framesIn = framesIn_;
  s.bytesIn = bytesIn_;
  s.framesOut = framesOut_;
  s.bytesOut = bytesOut_;
  s.stale = stale_;
  s.malformed = malformed_;
  return s;
}

std::string PlaneNet::error() const {
  std::lock_guard<std::mutex> g(mu_);
  return error_;
}

void PlaneNet::send(int32_t peer, const Region* regions, int nRegions, const Store* stores, int nStores,
                    int32_t guardOff, int32_t guardVal, int32_t ringOff, int64_t timeoutNs) {
  if (peer < 0 || peer >= kMaxPeers) throw std::range_error("model plane: peer id out of range");
  if (nRegions < 0 || nRegions > kMaxRegions || nStores < 0 || nStores > kMaxStores)
    throw std::range_error("model plane: too many regions or stores in one frame");
  Head h{kMagic, kVersion, nRegions, nStores, guardOff, guardVal, ringOff, 0};
  int64_t payload = 0;
  for (int i = 0; i < nRegions; i++) payload += std::max(0, regions[i].len);
  if (payload > bytes_) throw std::range_error("model plane: frame larger than the segment");
  h.payload = int32_t(payload);
  // The same checks the receiver makes: a frame this side would send is one the peer accepts.
  const std::string bad = checkFrame(h, regions, stores, bytes_);
  if (!bad.empty()) throw std::range_error("model plane: " + bad);
  std::shared_ptr<Link> link;
  {
    std::lock_guard<std::mutex> g(mu_);
    link = links_[size_t(peer)];
  }
  if (!link) throw std::runtime_error("model plane: no link to peer " + std::to_string(peer));
  iovec iov[3 + kMaxRegions];
  int n = 0;
  iov[n++] = {&h, sizeof h};
  if (nRegions > 0) iov[n++] = {const_cast<Region*>(regions), sizeof(Region) * size_t(nRegions)};
  if (nStores > 0) iov[n++] = {const_cast<Store*>(stores), sizeof(Store) * size_t(nStores)};
  for (int i = 0; i < nRegions; i++)
    if (regions[i].len > 0) iov[n++] = {base_ + regions[i].off, size_t(regions[i].len)};
  std::string why;
  {
    std::lock_guard<std::mutex> g(link->sendMu);
    why = net::writeAll(link->fd, iov, n, timeoutNs);
  }
  if (!why.empty()) {
    lost(link, why);
    throw std::runtime_error("model plane: peer " + std::to_string(peer) + ": " + why);
  }
  framesOut_++;
  bytesOut_ += payload;
}

void PlaneNet::ring(int32_t off) {
  std::atomic<int32_t>* w = wordAt(base_, off);
  w->fetch_add(1, std::memory_order_seq_cst);
  if (wordAt(base_, off + 4)->load(std::memory_order_seq_cst) > 0) dp::futexWake(w);
}

void PlaneNet::lost(const std::shared_ptr<Link>& link, const std::string& why) {
  Loss loss;
  {
    std::lock_guard<std::mutex> g(mu_);
    inbound_.erase(std::remove(inbound_.begin(), inbound_.end(), link), inbound_.end());
    error_ = "peer " + std::to_string(link->peer) + ": " + why;
    // Only the send link that failed: the peer may have been linked again since.
    if (links_[size_t(link->peer)] != link) {
      shutdown(link->fd, SHUT_RDWR);
      return;
    }
    links_[size_t(link->peer)].reset();
    loss = loss_[size_t(link->peer)];
  }
  shutdown(link->fd, SHUT_RDWR);
  if (loss.off >= 0) {
    wordAt(base_, loss.off)->store(loss.val, std::memory_order_release);
    if (loss.ringOff >= 0) ring(loss.ringOff);
  }
}

std::string PlaneNet::readFrame(int fd) {
  Head h;
  std::string why = net::readFull(fd, &h, sizeof h, kFrameNs);
  if (!why.empty()) return why;
  Region regions[kMaxRegions];
  Store stores[kMaxStores];
  // The counts are checked before they size a read.
  if (std::string bad = checkHead(h); !bad.empty()) {
    malformed_++;
    return "malformed frame: " + bad;
  }
  if (h.nRegions > 0) why = net::readFull(fd, regions, sizeof(Region) * size_t(h.nRegions), kFrameNs);
  if (why.empty() && h.nStores > 0) why = net::readFull(fd, stores, sizeof(Store) * size_t(h.nStores), kFrameNs);
  if (!why.empty()) return why;
  const std::string bad = checkFrame(h, regions, stores, bytes_);
  if (!bad.empty()) {
    malformed_++;
    return "malformed frame: " + bad;
  }
  if (h.guardOff >= 0 &&
      int32_t(uint32_t(h.guardVal) - uint32_t(wordAt(base_, h.guardOff)->load(std::memory_order_acquire))) < 0) {
    // A frame of a step given up since: its bytes are read and dropped.
    for (int64_t left = h.payload; left > 0;) {
      const size_t n = size_t(std::min<int64_t>(left, int64_t(scratch_.size())));
      why = net::readFull(fd, scratch_.data(), n, kFrameNs);
      if (!why.empty()) return why;
      left -= int64_t(n);
    }
    stale_++;
    return "";
  }
  for (int i = 0; i < h.nRegions; i++)
    if (regions[i].len > 0) {
      why = net::readFull(fd, base_ + regions[i].off, size_t(regions[i].len), kFrameNs);
      if (!why.empty()) return why;
    }
  for (int i = 0; i < h.nStores; i++) wordAt(base_, stores[i].off)->store(stores[i].val, std::memory_order_release);
  if (h.ringOff >= 0) ring(h.ringOff);
  framesIn_++;
  bytesIn_ += h.payload;
  return "";
}

std::string PlaneNet::serveHere(int fd) {
  for (;;) {
    const std::string why = readFrame(fd);
    if (!why.empty()) return why;
  }
}

void PlaneNet::acceptPending() {
  for (;;) {
    const int fd = accept4(listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    net::noDelay(fd);
    pending_.push_back(Pending{fd, nowNs() + kHelloNs, 0, Hello{}});
  }
}

void PlaneNet::readPending(Pending& p) {
  char* at = reinterpret_cast<char*>(&p.hello);
  const ssize_t r = recv(p.fd, at + p.got, sizeof p.hello - p.got, MSG_DONTWAIT);
  if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    p.deadline = 0;
    return;
  }
  if (r > 0) p.got += size_t(r);
  if (p.got < sizeof p.hello) return;
  // Compared in full whatever the first difference, so the time taken says nothing of the token.
  uint8_t diff = 0;
  for (size_t i = 0; i < kTokenBytes; i++) diff |= uint8_t(p.hello.token[i] ^ token_[i]);
  const uint8_t answer = diff != 0                                                    ? kBadToken
                         : p.hello.peer < 0 || p.hello.peer >= kMaxPeers || p.hello.peer == self_ ? kBadPeer
                         : p.hello.segmentBytes != bytes_                              ? kBadShape
                                                                                      : kAccepted;
  iovec iov{const_cast<uint8_t*>(&answer), 1};
  const bool sent = net::writeAll(p.fd, &iov, 1, kHelloNs).empty();
  if (answer == kAccepted && sent) {
    adoptInbound(p.hello.peer, p.fd);
    p.fd = -1;
  }
  p.deadline = 0;
}

void PlaneNet::loop() {
  std::vector<pollfd> fds;
  std::vector<std::shared_ptr<Link>> polled;
  while (!stopping_) {
    fds.clear();
    polled.clear();
    fds.push_back({wakeFd_, POLLIN, 0});
    int listenFd;
    {
      std::lock_guard<std::mutex> g(mu_);
      listenFd = listenFd_;
      for (const auto& l : links_)
        if (l) polled.push_back(l);
      for (const auto& l : inbound_)
        if (std::find(polled.begin(), polled.end(), l) == polled.end()) polled.push_back(l);
    }
    if (listenFd >= 0) fds.push_back({listenFd, POLLIN, 0});
    const size_t pendingAt = fds.size();
    for (const Pending& p : pending_) fds.push_back({p.fd, POLLIN, 0});
    const size_t linksAt = fds.size();
    for (const auto& l : polled) fds.push_back({l->fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), kPollMs) < 0 && errno != EINTR) break;
    if (fds[0].revents) {
      uint64_t v;
      (void)!read(wakeFd_, &v, sizeof v);
    }
    if (stopping_) break;
    for (size_t i = 0; i < polled.size(); i++) {
      if (!fds[linksAt + i].revents) continue;
      const std::string why = readFrame(polled[i]->fd);
      if (!why.empty()) lost(polled[i], why);
    }
    for (size_t i = 0; i < pending_.size(); i++)
      if (fds[pendingAt + i].revents) readPending(pending_[i]);
    const int64_t now = nowNs();
    pending_.erase(std::remove_if(pending_.begin(), pending_.end(),
                                  [&](const Pending& p) {
                                    if (p.deadline > now) return false;
                                    if (p.fd >= 0) close(p.fd);
                                    return true;
                                  }),
                   pending_.end());
    if (listenFd >= 0 && fds[1].revents) acceptPending();
  }
}

}  // namespace lk::pn
