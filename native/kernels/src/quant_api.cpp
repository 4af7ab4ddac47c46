#include "quant_api.h"

#include <algorithm>
#include <utility>

#include "napi_args.h"
#include "quant_pack.h"

namespace lk::quant {

using namespace lk::napi_args;

namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int qtypeOf(const Napi::CallbackInfo& info, size_t i, const char* m) {
  const int64_t q = integer(info, i, m, "qtype");
  if (q >= kQuantTypes) typeError(info.Env(), std::string(m) + ": qtype must be 0 (q8_0), 1 (q4_0), 2 (q4_k), 3 (q6_k), 4 (q4_1), 5 (q5_0), 6 (q5_1), 7 (q5_k), 8 (q3_k), 9 (q2_k), 10 (iq4_nl), 11 (iq4_xs) or 12 (mxfp4)");
  return int(q);
}

// A Uint8Array holding at least `need` bytes.
const uint8_t* bytesArg(const Napi::CallbackInfo& info, size_t i, const char* m, const char* name, int64_t need) {
  const Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    typeError(info.Env(), std::string(m) + ": " + name + " must be a Uint8Array");
  const Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  if (int64_t(a.ByteLength()) < need)
    typeError(info.Env(), std::string(m) + ": " + name + " has " + std::to_string(a.ByteLength()) +
                              " bytes, needs at least " + std::to_string(need));
  return a.Data();
}

// A weight's format and shape: arguments at (qtype), at + 1 (rows) and at + 2 (cols).
void matrixShape(const Napi::CallbackInfo& info, const char* m, QuantMatmulArgs& a, size_t at = 3) {
  a.qtype = qtypeOf(info, at, m);
  a.rows = integer(info, at + 1, m, "rows", 1);
  a.cols = integer(info, at + 2, m, "cols", 1);
}

// Bytes of a [rows, cols] matrix in a block format; cols must be whole blocks.
int64_t matrixBytes(const Napi::CallbackInfo& info, const char* m, int qtype, int64_t rows, int64_t cols) {
  const QuantFormat& f = kQuantFormats[qtype];
  if (cols % f.block)
    typeError(info.Env(), std::string(m) + ": cols = " + std::to_string(cols) + " is not a multiple of " + f.name +
                              "'s block of " + std::to_string(f.block));
  return rows * (cols / f.block) * f.bytes;
}

}  // namespace

void Api::registerFunctions(Napi::Env env, Napi::Object exports) {
  exportMethods<Api>(env, exports, this,
                     {{"quantMatmul", &Api::Matmul},
                      {"quantGroupedMatmul", &Api::GroupedMatmul},
                      {"quantEmbedding", &Api::Embedding},
                      {"quantPackedBytes", &Api::PackedBytes},
                      {"quantPack", &Api::Pack},
                      {"quantInfo", &Api::Info},
                      {"selectQuantVariant", &Api::SelectVariant}});
}

const QuantTable* Api::current() { return pinned_ ? pinned_ : followed(); }

const QuantTable* Api::followed() {
  if (followed_ != *table_) {
    followed_ = *table_;
    following_ = quantTableFor(followed_->name);
  }
  return following_;
}

// quantMatmul(out, x, w, qtype, rows, cols, nTokens, bias?, packed?): out[n, rows] = x[n, cols] · Wᵀ
// (+ bias). packed: the same rows packed by quantPack, which the variant's packed row path reads
// for a batch under its packedTo tokens where it has one (the rows past the last whole group, and
// every other case, read w).
Napi::Value Api::Matmul(const Napi::CallbackInfo& info) {
  const char* m = "quantMatmul";
  QuantMatmulArgs a{};
  matrixShape(info, m, a);
  a.nTokens = integer(info, 6, m, "nTokens");
  const int64_t wBytes = matrixBytes(info, m, a.qtype, a.rows, a.cols);
  a.out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, a.nTokens * a.rows).data);
  const float* x = static_cast<const float*>(array(info, 1, m, "x", napi_float32_array, a.nTokens * a.cols).data);
  a.w = bytesArg(info, 2, m, "w", wBytes);
  a.bias = present(info, 7) ? static_cast<const float*>(array(info, 7, m, "bias", napi_float32_array, a.rows).data)
                            : nullptr;
  const int64_t groups = a.rows / kPackRows;
  const uint8_t* packed = present(info, 8) && packableType(a.qtype) && groups > 0
                              ? bytesArg(info, 8, m, "packed", groups * kPackRows * (wBytes / a.rows))
                              : nullptr;
  if (a.nTokens == 0) return info.Env().Undefined();
  const QuantTable* q = current();
  quantizeRows(q, x, a.cols, a.nTokens);
  a.xq = xq_.data();
  if (packed && q->matmulPacked && a.nTokens < q->packedTo)
    runPacked(q, a, packed, wBytes);
  else
    run(q, a, wBytes);
  return info.Env().Undefined();
}

// quantPackedBytes(qtype, rows, cols): the bytes quantPack writes for this matrix where the addon's
// variant (not one selectQuantVariant pins for a test) has a packed row path for its format and the
// matrix a whole group of rows, else 0.
Napi::Value Api::PackedBytes(const Napi::CallbackInfo& info) {
  const char* m = "quantPackedBytes";
  QuantMatmulArgs a{};
  matrixShape(info, m, a, 0);
  const int64_t rowBytes = matrixBytes(info, m, a.qtype, 1, a.cols);
  const bool packs = followed()->matmulPacked && packableType(a.qtype);
  return Napi::Number::New(info.Env(), double(packs ? a.rows / kPackRows * kPackRows * rowBytes : 0));
}

// quantPack(dst, w, qtype, rows, cols): w's whole groups of 16 rows packed into dst (quant_pack.h),
// on the pool.
Napi::Value Api::Pack(const Napi::CallbackInfo& info) {
  const char* m = "quantPack";
  QuantMatmulArgs a{};
  matrixShape(info, m, a, 2);
  if (!packableType(a.qtype))
    typeError(info.Env(), std::string(m) + ": " + kQuantFormats[a.qtype].name + " has no packed layout");
  const int64_t wBytes = matrixBytes(info, m, a.qtype, a.rows, a.cols), groups = a.rows / kPackRows;
  uint8_t* dst = const_cast<uint8_t*>(bytesArg(info, 0, m, "dst", groups * kPackRows * (wBytes / a.rows)));
  const uint8_t* w = bytesArg(info, 1, m, "w", wBytes);
  const int64_t per = std::max<int64_t>(1, ceilDiv(groups, pool_->size() * 4));
  pool_->forEach(ceilDiv(groups, per), [&](int64_t task) {
    packRowGroups(dst, w, a.qtype, a.cols, task * per, std::min(groups, (task + 1) * per));
  });
  return info.Env().Undefined();
}

// Row groups of a packed product in slices on the pool (inline when small), sliced as run()
// slices rows; the rows past the last whole group go through the unpacked path as one more task.
void Api::runPacked(const QuantTable* q, const QuantMatmulArgs& a, const uint8_t* packed, int64_t wBytes) {
  const int64_t groups = a.rows / kPackRows, tail = groups * kPackRows;
  if (a.rows * a.cols * a.nTokens < 65536) {
    q->matmulPacked(a, packed, 0, groups);
    if (tail < a.rows) q->matmul(a, tail, a.rows);
    return;
  }
  const int64_t threads = pool_->size(), groupBytes = wBytes / a.rows * kPackRows;
  int64_t per = std::max(ceilDiv(groups, threads * 8), ceilDiv(int64_t(64) << 10, groupBytes));
  per = std::min(per, std::max<int64_t>(1, ceilDiv(groups, threads * 2)));
  const int64_t tasks = ceilDiv(groups, per);
  pool_->forEach(tasks + (tail < a.rows ? 1 : 0), [&](int64_t task) {
    if (task == tasks) return q->matmul(a, tail, a.rows);
    q->matmulPacked(a, packed, task * per, std::min(groups, (task + 1) * per));
  });
}

// quantGroupedMatmul(out, x, w, qtype, rows, cols, experts, expertStart): w holds `experts`
// matrices [rows, cols] one after another; rows expertStart[e] .. expertStart[e + 1] of x go
// through expert e into the same rows of out. The activations are quantized once for all.
Napi::Value Api::GroupedMatmul(const Napi::CallbackInfo& info) {
  const char* m = "quantGroupedMatmul";
  QuantMatmulArgs a{};
  matrixShape(info, m, a);
  const int64_t experts = integer(info, 6, m, "experts", 1);
  const int32_t* start =
      static_cast<const int32_t*>(array(info, 7, m, "expertStart", napi_int32_array, experts + 1).data);
  const int64_t total = start[experts];
  for (int64_t e = 0; e < experts; e++)
    if (start[e] < 0 || start[e] > start[e + 1])
      throw Napi::RangeError::New(info.Env(), std::string(m) + ": expertStart is not non-decreasing from 0");
  const int64_t wBytes = matrixBytes(info, m, a.qtype, a.rows, a.cols);
  float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, total * a.rows).data);
  const float* x = static_cast<const float*>(array(info, 1, m, "x", napi_float32_array, total * a.cols).data);
  const uint8_t* w = bytesArg(info, 2, m, "w", wBytes * experts);
  if (total == 0) return info.Env().Undefined();
  const QuantTable* q = current();
  quantizeRows(q, x, a.cols, total);
  const int64_t xs = actStride(a.cols);
  for (int64_t e = 0; e < experts; e++) {
    const int64_t n = start[e + 1] - start[e];
    if (n == 0) continue;
    QuantMatmulArgs one = a;
    one.w = w + e * wBytes;
    one.xq = xq_.data() + start[e] * xs;
    one.out = out + start[e] * a.rows;
    one.nTokens = n;
    run(q, one, wBytes);
  }
  return info.Env().Undefined();
}

// The int8 activations of nTokens rows of x into xq_ (on the pool when large).
void Api::quantizeRows(const QuantTable* q, const float* x, int64_t cols, int64_t nTokens) {
  xq_.resize(size_t(nTokens * actStride(cols)));
  uint8_t* xq = xq_.data();
  const int64_t threads = pool_->size();
  if (nTokens * cols < 65536) {
    q->quantizeActs(xq, x, cols, 0, nTokens);
  } else {
    const int64_t per = ceilDiv(nTokens, threads * 4);
    pool_->forEach(ceilDiv(nTokens, per), [&](int64_t task) {
      q->quantizeActs(xq, x, cols, task * per, std::min(nTokens, (task + 1) * per));
    });
  }
}

// Rows of one product in slices on the pool (inline when small).
void Api::run(const QuantTable* q, const QuantMatmulArgs& a, int64_t wBytes) {
  if (a.rows * a.cols * a.nTokens < 65536) {
    q->matmul(a, 0, a.rows);
    return;
  }
  const int64_t threads = pool_->size();
  // One token: 8 slices per thread (the last thread waits for an eighth of the call), none under
  // 64 KiB of weights: a slice is one to four sequential streams, each of which the prefetcher has
  // to find anew, so they need length. 32 slices per thread measured 61-65% of the streaming read
  // for Q4_K at 4096x4096 on two threads against 87-95% for 8 (Q8_0 75-95% against 93-101%), and a
  // SmolLM2-135M Q8_0 decode step 6.1-7.8 ms against 5.5-5.8, alternating runs. A batch smaller
  // than the panels take reads the weights once for all its tokens, as one token does, and is
  // sliced the same. A batch: 32-row slices (one panel each), at least two per thread.
  const int64_t rowBytes = wBytes / a.rows;
  int64_t per = a.nTokens < q->batchFrom[a.qtype]
                    ? std::max(ceilDiv(a.rows, threads * 8), ceilDiv(int64_t(64) << 10, rowBytes))
                    : 32;
  per = std::min(per, std::max<int64_t>(4, ceilDiv(a.rows, threads * 2)));
  per = ceilDiv(per, 4) * 4;
  pool_->forEach(ceilDiv(a.rows, per), [&](int64_t task) {
    const int64_t r0 = task * per;
    q->matmul(a, r0, std::min(a.rows, r0 + per));
  });
}

// quantEmbedding(out, table, qtype, vocab, dim, tokens, nTokens): out[t] = row tokens[t], dequantized.
Napi::Value Api::Embedding(const Napi::CallbackInfo& info) {
  const char* m = "quantEmbedding";
  const int qtype = qtypeOf(info, 2, m);
  const int64_t vocab = integer(info, 3, m, "vocab", 1);
  const int64_t dim = integer(info, 4, m, "dim", 1);
  const int64_t n = integer(info, 6, m, "nTokens");
  const int64_t bytes = matrixBytes(info, m, qtype, vocab, dim);
  float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, n * dim).data);
  const uint8_t* table = bytesArg(info, 1, m, "table", bytes);
  const int32_t* tokens = static_cast<const int32_t*>(array(info, 5, m, "tokens", napi_int32_array, n).data);
  for (int64_t t = 0; t < n; t++)
    if (tokens[t] < 0 || tokens[t] >= vocab)
      rangeError(info.Env(), std::string(m) + ": tokens[" + std::to_string(t) + "] = " + std::to_string(tokens[t]) +
                                 " is outside [0, " + std::to_string(vocab) + ")");
  const int64_t per = std::max<int64_t>(1, 32768 / dim);
  pool_->forEach(ceilDiv(n, per), [&](int64_t task) {
    for (int64_t t = task * per; t < std::min(n, (task + 1) * per); t++)
      dequantRow(out + t * dim, table, qtype, dim, tokens[t]);
  });
  return info.Env().Undefined();
}

// quantInfo(): { variant, pinned, packedRows (a row path on weights packed 16 rows a vector), supported }
Napi::Value Api::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("variant", current()->name);
  o.Set("pinned", pinned_ != nullptr);
  o.Set("packedRows", current()->matmulPacked != nullptr);
  Napi::Array list = Napi::Array::New(env);
  uint32_t i = 0;
  for (const auto& v : supportedQuantVariants()) list.Set(i++, v);
  o.Set("supported", list);
  return o;
}

// selectQuantVariant(name | null): pins a quantized variant (tests, benchmarks); null follows the
// addon's variant again.
Napi::Value Api::SelectVariant(const Napi::CallbackInfo& info) {
  if (!present(info, 0)) {
    pinned_ = nullptr;
    return info.Env().Undefined();
  }
  if (!info[0].IsString()) typeError(info.Env(), "selectQuantVariant: name must be a string or null");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  const QuantTable* t = quantTable(name);
  if (!t) rangeError(info.Env(), "selectQuantVariant: variant '" + name + "' is unknown or unsupported by this CPU");
  pinned_ = t;
  return info.Env().Undefined();
}

}  // namespace lk::quant
