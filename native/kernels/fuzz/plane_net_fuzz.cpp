// libFuzzer target: a copy of the model plane as a hostile peer's frames land in it (plane_net.cpp).
// Each input is the byte stream of one authenticated link, written into a socket pair the receiver
// serves until the stream ends or a frame breaks the rules. Whatever the bytes, no write may land
// outside the segment (its guard zones stay intact), nothing may be read out of bounds and nothing
// may hang (run under AddressSanitizer). Built and run for a bounded time by
// test/runtime/plane-net-fuzz.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "plane_net.h"

using namespace lk::pn;

namespace {

constexpr int64_t kSegment = 4096;
constexpr size_t kGuard = 256;

struct Fixture {
  std::vector<char> memory = std::vector<char>(kSegment + 2 * kGuard, char(0x5a));
  PlaneNet net{memory.data() + kGuard, kSegment, std::string(kTokenBytes, 't'), 1};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* f = new Fixture();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 0;
  // Inputs are small (libFuzzer's default length): the whole stream fits the pair's buffer.
  for (size_t off = 0; off < size;) {
    const ssize_t w = write(sv[1], data + off, size - off);
    if (w <= 0) break;
    off += size_t(w);
  }
  close(sv[1]);
  (void)f->net.serveHere(sv[0]);
  close(sv[0]);
  for (size_t i = 0; i < kGuard; i++)
    if (f->memory[i] != char(0x5a) || f->memory[kGuard + size_t(kSegment) + i] != char(0x5a)) abort();
  return 0;
}
