// Socket calls shared by the native transports (the attention data plane over TCP and the model
// plane over TCP): whole-buffer reads and gathered writes under a deadline, never a SIGPIPE, and
// listening and connecting sockets with TCP_NODELAY.
#pragma once
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace lk::net {

void noDelay(int fd);
void setNonBlocking(int fd);
/** Reads exactly n bytes within timeoutNs; the reason on failure, else "". */
std::string readFull(int fd, void* p, size_t n, int64_t timeoutNs);
/** Writes every byte of the iovecs within timeoutNs (the iovecs are consumed); the reason, else "". */
std::string writeAll(int fd, iovec* iov, int n, int64_t timeoutNs);
/**
 * A non-blocking listening socket on host (numeric unless `names`), port 0 for any; sets `port`.
 * Throws std::runtime_error naming `what` on failure.
 */
int listenOn(const std::string& host, int& port, const char* what, bool names = false);
/** A connected, non-blocking socket with TCP_NODELAY (numeric host unless `names`); throws naming `what`. */
int connectTo(const std::string& host, int port, int64_t timeoutNs, const char* what, bool names = false);

}  // namespace lk::net
