// The limits the transports are measured against, written as plainly as native code allows, so a
// benchmark can state each transport figure as a ratio to what the machine does without it:
//   pingPongLead(buffer, byteOffset, bytes, iterations, timeoutMs) -> Float64Array of round trips (ns)
//   pingPongEcho(buffer, byteOffset, bytes, iterations, timeoutMs) -> round trips echoed
//     Two processes over one shared mapping: the lead copies `bytes` into region A and bumps its
//     sequence word; the echo spins on it, copies A into region B and bumps its own;
//     the lead spins on that and copies B out. With bytes = 0 this is a cache-line ping-pong.
//   tcpListen() -> { fd, port }    a blocking loopback listener on an ephemeral port
//   tcpEcho(fd, bytes, iterations, timeoutMs) -> round trips echoed (accepts one connection)
//   tcpPingPong(port, bytes, iterations) -> Float64Array of round trips (ns)
//     A plain blocking-socket ping-pong over loopback TCP with TCP_NODELAY.
// Each spins only (no futex): a limit is the best the hardware does when both sides are awake.
#include <napi.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lamina_limits {

namespace {

using Clock = std::chrono::steady_clock;

struct Region {
  uint32_t* leadSeq;  // cache line 0
  uint32_t* echoSeq;  // cache line 1
  uint8_t* a;         // lead → echo payload
  uint8_t* b;         // echo → lead payload
};

constexpr size_t kLine = 64;

// Lays out the two sequence words and two payload regions at byteOffset, or throws.
bool RegionAt(const Napi::CallbackInfo& info, size_t bytes, Region* r) {
  Napi::Env env = info.Env();
  if (!info[0].IsArrayBuffer() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "expected (buffer: ArrayBuffer, byteOffset: number, ...)").ThrowAsJavaScriptException();
    return false;
  }
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  int64_t off = info[1].As<Napi::Number>().Int64Value();
  size_t need = 2 * kLine + 2 * bytes;
  if (off < 0 || off % kLine != 0 || static_cast<uint64_t>(off) + need > ab.ByteLength()) {
    Napi::RangeError::New(env, "byteOffset must be 64-aligned with room for 2 lines + 2 × bytes")
        .ThrowAsJavaScriptException();
    return false;
  }
  auto* base = static_cast<uint8_t*>(ab.Data()) + off;
  r->leadSeq = reinterpret_cast<uint32_t*>(base);
  r->echoSeq = reinterpret_cast<uint32_t*>(base + kLine);
  r->a = base + 2 * kLine;
  r->b = r->a + bytes;
  return true;
}

bool Counts(const Napi::CallbackInfo& info, size_t first, double* bytes, double* iterations) {
  if (info.Length() < first + 2 || !info[first].IsNumber() || !info[first + 1].IsNumber()) {
    Napi::TypeError::New(info.Env(), "expected bytes and iterations").ThrowAsJavaScriptException();
    return false;
  }
  *bytes = info[first].As<Napi::Number>().DoubleValue();
  *iterations = info[first + 1].As<Napi::Number>().DoubleValue();
  if (!(*bytes >= 0 && *bytes <= (1 << 30)) || !(*iterations >= 1 && *iterations <= 1e8)) {
    Napi::RangeError::New(info.Env(), "bytes must be 0..1 GiB and iterations 1..1e8").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

double TimeoutMs(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : 10000;
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// Spins until *word == want; false once `timeoutMs` passes without it (the peer is gone).
bool SpinFor(const uint32_t* word, uint32_t want, double timeoutMs) {
  auto deadline = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(timeoutMs * 1000));
  for (uint32_t n = 0;; n++) {
    if (__atomic_load_n(word, __ATOMIC_ACQUIRE) == want) return true;
    CpuRelax();
    if ((n & 1023) == 1023 && Clock::now() > deadline) return false;
  }
}

Napi::Value PingPongLead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double bytes, iterations;
  Region r;
  if (info.Length() < 4 || !Counts(info, 2, &bytes, &iterations) || !RegionAt(info, bytes, &r))
    return env.Undefined();
  double timeoutMs = TimeoutMs(info, 4);
  size_t n = static_cast<size_t>(bytes);
  std::vector<uint8_t> src(n, 0x5a), dst(n);
  auto out = Napi::Float64Array::New(env, static_cast<size_t>(iterations));
  uint32_t seq = __atomic_load_n(r.leadSeq, __ATOMIC_ACQUIRE);
  for (size_t i = 0; i < out.ElementLength(); i++) {
    auto t0 = Clock::now();
    if (n) std::memcpy(r.a, src.data(), n);
    __atomic_store_n(r.leadSeq, ++seq, __ATOMIC_RELEASE);
    if (!SpinFor(r.echoSeq, seq, timeoutMs)) {
      Napi::Error::New(env, "pingPongLead: the echo side stopped answering").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (n) std::memcpy(dst.data(), r.b, n);
    out[i] = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
  }
  return out;
}

Napi::Value PingPongEcho(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double bytes, iterations;
  Region r;
  if (info.Length() < 4 || !Counts(info, 2, &bytes, &iterations) || !RegionAt(info, bytes, &r))
    return env.Undefined();
  double timeoutMs = TimeoutMs(info, 4);
  size_t n = static_cast<size_t>(bytes);
  uint32_t seq = __atomic_load_n(r.echoSeq, __ATOMIC_ACQUIRE);
  double done = 0;
  for (; done < iterations; done++) {
    if (!SpinFor(r.leadSeq, seq + 1, timeoutMs)) break;
    // One copy, the way a worker reads its input in place and writes its reply into the ring.
    if (n) std::memcpy(r.b, r.a, n);
    __atomic_store_n(r.echoSeq, ++seq, __ATOMIC_RELEASE);
  }
  return Napi::Number::New(env, done);
}

bool SendAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool RecvAll(int fd, uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t k = recv(fd, p, n, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

void NoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Napi::Value TcpListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 1) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    Napi::Error::New(env, std::string("tcpListen: ") + std::strerror(errno)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", fd);
  o.Set("port", ntohs(addr.sin_port));
  return o;
}

Napi::Value TcpEcho(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double bytes, iterations;
  if (info.Length() < 3 || !info[0].IsNumber() || !Counts(info, 1, &bytes, &iterations)) return env.Undefined();
  int lfd = info[0].As<Napi::Number>().Int32Value();
  int fd = accept(lfd, nullptr, nullptr);
  close(lfd);
  if (fd < 0) return Napi::Number::New(env, 0);
  NoDelay(fd);
  std::vector<uint8_t> buf(static_cast<size_t>(bytes) + 1);
  double done = 0;
  for (; done < iterations; done++)
    if (!RecvAll(fd, buf.data(), buf.size()) || !SendAll(fd, buf.data(), buf.size())) break;
  close(fd);
  return Napi::Number::New(env, done);
}

Napi::Value TcpPingPong(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double bytes, iterations;
  if (info.Length() < 3 || !info[0].IsNumber() || !Counts(info, 1, &bytes, &iterations)) return env.Undefined();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(info[0].As<Napi::Number>().Int32Value()));
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (fd >= 0) close(fd);
    Napi::Error::New(env, std::string("tcpPingPong: ") + std::strerror(errno)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  NoDelay(fd);
  // One extra byte, as a frame header would be: a zero-byte payload still makes a round trip.
  std::vector<uint8_t> buf(static_cast<size_t>(bytes) + 1, 0x5a);
  auto out = Napi::Float64Array::New(env, static_cast<size_t>(iterations));
  for (size_t i = 0; i < out.ElementLength(); i++) {
    auto t0 = Clock::now();
    if (!SendAll(fd, buf.data(), buf.size()) || !RecvAll(fd, buf.data(), buf.size())) {
      close(fd);
      Napi::Error::New(env, "tcpPingPong: the echo side closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    out[i] = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
  }
  close(fd);
  return out;
}

}  // namespace

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("pingPongLead", Napi::Function::New(env, PingPongLead));
  exports.Set("pingPongEcho", Napi::Function::New(env, PingPongEcho));
  exports.Set("tcpListen", Napi::Function::New(env, TcpListen));
  exports.Set("tcpEcho", Napi::Function::New(env, TcpEcho));
  exports.Set("tcpPingPong", Napi::Function::New(env, TcpPingPong));
}

}  // namespace lamina_limits
