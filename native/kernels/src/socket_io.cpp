#include "socket_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "spin_wait.h"

namespace lk::net {

void noDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}


std::string readFull(int fd, void* p, size_t n, int64_t timeoutNs) {
  char* at = static_cast<char*>(p);
  const int64_t end = nowNs() + timeoutNs;
  while (n > 0) {
    const ssize_t r = recv(fd, at, n, MSG_DONTWAIT);
    if (r > 0) {
      at += r;
      n -= size_t(r);
      continue;
    }
    if (r == 0) return "the peer closed the data-plane connection";
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return std::string("recv: ") + std::strerror(errno);
    const int64_t left = end - nowNs();
    if (left <= 0) return "a data-plane frame stalled mid-way";
    pollfd pfd{fd, POLLIN, 0};
    poll(&pfd, 1, int(std::min<int64_t>(left / 1000000 + 1, 100)));
  }
  return "";
}


std::string writeAll(int fd, iovec* iov, int n, int64_t timeoutNs) {
  const int64_t end = nowNs() + timeoutNs;
  while (n > 0) {
    // sendmsg with MSG_NOSIGNAL, not writev: a peer gone mid-write is an error here, never a
    // SIGPIPE that ends the process (whatever the embedding host does with that signal).
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = size_t(n);
    const ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return std::string("sendmsg: ") + std::strerror(errno);
      const int64_t left = end - nowNs();
      if (left <= 0) return "the peer took no data-plane bytes within the bound";
      pollfd pfd{fd, POLLOUT, 0};
      poll(&pfd, 1, int(std::min<int64_t>(left / 1000000 + 1, 100)));
      continue;
    }
    size_t done = size_t(w);
    while (n > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + done;
      iov->iov_len -= done;
    }
  }
  return "";
}

void setNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }

int listenOn(const std::string& host, int& port, const char* what, bool names) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | (names ? 0 : AI_NUMERICHOST);
  addrinfo* res = nullptr;
  const std::string p = std::to_string(port);
  if (getaddrinfo(host.c_str(), p.c_str(), &hints, &res) != 0 || !res)
    throw std::runtime_error(std::string(what) + ": cannot listen on " + host);
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const bool ok = fd >= 0 && bind(fd, res->ai_addr, res->ai_addrlen) == 0 && listen(fd, 16) == 0;
  freeaddrinfo(res);
  if (!ok) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) close(fd);
    throw std::runtime_error(std::string(what) + ": listen on " + host + ": " + why);
  }
  setNonBlocking(fd);
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = a.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port)
                                 : ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
  return fd;
}

int connectTo(const std::string& host, int port, int64_t timeoutNs, const char* what, bool names) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = names ? 0 : AI_NUMERICHOST;
  addrinfo* res = nullptr;
  const std::string p = std::to_string(port);
  if (getaddrinfo(host.c_str(), p.c_str(), &hints, &res) != 0 || !res)
    throw std::runtime_error(std::string(what) + ": bad address " + host);
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    throw std::runtime_error(std::string(what) + ": socket: " + std::strerror(errno));
  }
  setNonBlocking(fd);
  int rc = connect(fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd pfd{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (poll(&pfd, 1, int(timeoutNs / 1000000)) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
        err == 0)
      rc = 0;
    else
      errno = err ? err : ETIMEDOUT;
  }
  if (rc != 0) {
    const std::string why = std::strerror(errno);
    close(fd);
    throw std::runtime_error(std::string(what) + ": connect to " + host + ":" + p + ": " + why);
  }
  noDelay(fd);
  return fd;
}

}  // namespace lk::net
