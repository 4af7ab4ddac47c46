// lamina_shm: the few operating-system calls the same-host transport needs and Node lacks.
//   create(name, bytes) / open(name) -> ArrayBuffer   map a POSIX shared-memory segment
//   unlink(name) -> boolean                           remove the name (mappings stay valid)
//   wait(buf, byteOffset, expected, timeoutMs) -> 0 woken | 1 value differed | 2 timed out
//   waitAsync(...) -> Promise of the same, the wait runs on a libuv pool thread
//   wake(buf, byteOffset, count) -> number of sleepers woken
//   pidAlive(pid) -> boolean                          exists and is not a zombie
// and, from limits.cc, the native ping-pongs the transports are benchmarked against.
// Everything else (ring indices, spinning, frame layout) lives in TypeScript over the mapped
// ArrayBuffer; wait/wake are only called when a side has nothing to do.
#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

namespace lamina_limits {
void Register(Napi::Env env, Napi::Object exports);
}

namespace {

Napi::Value ThrowErrno(Napi::Env env, const std::string& what) {
  Napi::Error::New(env, what + ": " + std::strerror(errno)).ThrowAsJavaScriptException();
  return env.Undefined();
}

void Unmap(Napi::Env /*env*/, void* data, size_t* length) {
  munmap(data, *length);
  delete length;
}

Napi::Value MapFd(Napi::Env env, int fd, size_t bytes, const std::string& name) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int saved = errno;
  close(fd);
  if (p == MAP_FAILED) {
    errno = saved;
    return ThrowErrno(env, "mmap " + name);
  }
  // The finalizer unmaps once the last JS view of the buffer is garbage: no explicit unmap, so a
  // stale view can never touch unmapped memory.
  return Napi::ArrayBuffer::New(env, p, bytes, Unmap, new size_t(bytes));
}

bool ValidName(const std::string& name) {
  return name.size() >= 2 && name.size() < 240 && name[0] == '/' && name.find('/', 1) == std::string::npos;
}

Napi::Value Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "create(name: string, bytes: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  double bytes = info[1].As<Napi::Number>().DoubleValue();
  if (!ValidName(name) || !(bytes >= 4096) || bytes > 64.0 * (1ull << 30)) {
    Napi::RangeError::New(env, "create: name must look like /name and size be 4 KiB..64 GiB")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) return ThrowErrno(env, "shm_open " + name);
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    int saved = errno;
    close(fd);
    shm_unlink(name.c_str());
    errno = saved;
    return ThrowErrno(env, "ftruncate " + name);
  }
  return MapFd(env, fd, static_cast<size_t>(bytes), name);
}

Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "open(name: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (!ValidName(name)) {
    Napi::RangeError::New(env, "open: name must look like /name").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = shm_open(name.c_str(), O_RDWR, 0);
  if (fd < 0) return ThrowErrno(env, "shm_open " + name);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return ThrowErrno(env, "fstat " + name);
  }
  if (st.st_size < 4096) {
    close(fd);
    Napi::Error::New(env, "open: segment " + name + " is too small").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return MapFd(env, fd, static_cast<size_t>(st.st_size), name);
}

Napi::Value Unlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "unlink(name: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (shm_unlink(name.c_str()) == 0) return Napi::Boolean::New(env, true);
  if (errno == ENOENT) return Napi::Boolean::New(env, false);
  return ThrowErrno(env, "shm_unlink " + name);
}

// Resolves (buffer, byteOffset) to an aligned 32-bit word inside the buffer, or throws.
int32_t* WordAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArrayBuffer() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "expected (buffer: ArrayBuffer, byteOffset: number, ...)")
        .ThrowAsJavaScriptException();
    return nullptr;
  }
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  int64_t off = info[1].As<Napi::Number>().Int64Value();
  if (off < 0 || (off & 3) != 0 || static_cast<uint64_t>(off) + 4 > ab.ByteLength()) {
    Napi::RangeError::New(env, "byteOffset must be 4-aligned and inside the buffer")
        .ThrowAsJavaScriptException();
    return nullptr;
  }
  return reinterpret_cast<int32_t*>(static_cast<uint8_t*>(ab.Data()) + off);
}

// 0: woken (or spurious), 1: the word did not hold `expected`, 2: timed out.
int FutexWait(int32_t* word, int32_t expected, double timeoutMs) {
#ifdef __linux__
  struct timespec ts;
  struct timespec* tsp = nullptr;
  if (timeoutMs >= 0) {
    ts.tv_sec = static_cast<time_t>(timeoutMs / 1000);
    ts.tv_nsec = static_cast<long>((timeoutMs - ts.tv_sec * 1000.0) * 1e6);
    tsp = &ts;
  }
  // Not FUTEX_PRIVATE: the word is shared between processes.
  long r = syscall(SYS_futex, word, FUTEX_WAIT, expected, tsp, nullptr, 0);
  if (r == 0) return 0;
  if (errno == EAGAIN) return 1;
  if (errno == ETIMEDOUT) return 2;
  return 0;  // EINTR: let the caller re-check
#else
  // Portable fallback: a short sleep, the caller re-checks the word.
  if (__atomic_load_n(word, __ATOMIC_SEQ_CST) != expected) return 1;
  usleep(timeoutMs > 0 && timeoutMs < 0.1 ? static_cast<useconds_t>(timeoutMs * 1000) : 100);
  return 0;
#endif
}

Napi::Value Wait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t* word = WordAt(info);
  if (!word) return env.Undefined();
  if (info.Length() < 4 || !info[2].IsNumber() || !info[3].IsNumber()) {
    Napi::TypeError::New(env, "wait(buffer, byteOffset, expected, timeoutMs)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int32_t expected = info[2].As<Napi::Number>().Int32Value();
  double timeoutMs = info[3].As<Napi::Number>().DoubleValue();
  return Napi::Number::New(env, FutexWait(word, expected, timeoutMs));
}

// A futex wait on a libuv pool thread, settled on the JS thread. Written on the raw N-API, whose
// failures can be ignored: when a worker thread is torn down with a wait pending, JS can no longer
// run, and node-addon-api would turn the failed resolve (or handle scope) into a fatal error. The
// promise is then simply dropped: nothing awaits it any more.
struct WaitWork {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  napi_ref buffer = nullptr;  // keeps the mapping alive while a pool thread waits on it
  int32_t* word = nullptr;
  int32_t expected = 0;
  double timeoutMs = 0;
  int result = 0;
};

void WaitExecute(napi_env /*env*/, void* data) {
  auto* w = static_cast<WaitWork*>(data);
  w->result = FutexWait(w->word, w->expected, w->timeoutMs);
}

void WaitComplete(napi_env env, napi_status status, void* data) {
  auto* w = static_cast<WaitWork*>(data);
  napi_value v;
  if (status == napi_ok && napi_create_int32(env, w->result, &v) == napi_ok)
    napi_resolve_deferred(env, w->deferred, v);
  if (w->buffer) napi_delete_reference(env, w->buffer);
  napi_delete_async_work(env, w->work);
  delete w;
}

Napi::Value WaitAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t* word = WordAt(info);
  if (!word) return env.Undefined();
  if (info.Length() < 4 || !info[2].IsNumber() || !info[3].IsNumber()) {
    Napi::TypeError::New(env, "waitAsync(buffer, byteOffset, expected, timeoutMs)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  double timeoutMs = info[3].As<Napi::Number>().DoubleValue();
  if (!(timeoutMs >= 0 && timeoutMs <= 60000)) {
    Napi::RangeError::New(env, "waitAsync: timeoutMs must be 0..60000 (a pool thread is held meanwhile)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* w = new WaitWork();
  w->word = word;
  w->expected = info[2].As<Napi::Number>().Int32Value();
  w->timeoutMs = timeoutMs;
  napi_value promise, name;
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
      napi_create_reference(env, info[0], 1, &w->buffer) != napi_ok ||
      napi_create_string_utf8(env, "lamina_shm.waitAsync", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, nullptr, name, WaitExecute, WaitComplete, w, &w->work) != napi_ok ||
      napi_queue_async_work(env, w->work) != napi_ok) {
    delete w;
    Napi::Error::New(env, "waitAsync: could not queue the wait").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Value(env, promise);
}

Napi::Value Wake(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t* word = WordAt(info);
  if (!word) return env.Undefined();
  int count = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : INT32_MAX;
#ifdef __linux__
  long r = syscall(SYS_futex, word, FUTEX_WAKE, count, nullptr, nullptr, 0);
  return Napi::Number::New(env, r < 0 ? 0 : static_cast<double>(r));
#else
  (void)count;
  return Napi::Number::New(env, 0);
#endif
}

Napi::Value PidAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "pidAlive(pid: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int pid = info[0].As<Napi::Number>().Int32Value();
  if (pid <= 0) return Napi::Boolean::New(env, false);
  if (kill(pid, 0) != 0 && errno != EPERM) return Napi::Boolean::New(env, false);
#ifdef __linux__
  // A dead child that its parent has not reaped yet still answers kill(0): look at its state.
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = std::fopen(path, "r");
  if (f) {
    char buf[512];
    size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    const char* close_paren = std::strrchr(buf, ')');
    if (close_paren && close_paren[1] == ' ' && (close_paren[2] == 'Z' || close_paren[2] == 'X'))
      return Napi::Boolean::New(env, false);
  }
#endif
  return Napi::Boolean::New(env, true);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("create", Napi::Function::New(env, Create));
  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("unlink", Napi::Function::New(env, Unlink));
  exports.Set("wait", Napi::Function::New(env, Wait));
  exports.Set("waitAsync", Napi::Function::New(env, WaitAsync));
  exports.Set("wake", Napi::Function::New(env, Wake));
  exports.Set("pidAlive", Napi::Function::New(env, PidAlive));
  lamina_limits::Register(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(lamina_shm, Init)
