// The Node-API face of the kernels: checks arguments cheaply (lengths against dimensions, indices
// against their tables) and throws a TypeError/RangeError naming the argument, then splits the
// work over this instance's thread pool. Context-aware: each Node environment (main thread or
// worker) gets its own instance with its own pool and variant; there is no global JS state.
#include <napi.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "line_vector.h"
#include "attention_runner.h"
#include "napi_args.h"
#include "cpu_affinity.h"
#include "cpu_select.h"
#include "read_ahead_policy.h"
#include "dataplane_api.h"
#include "elementwise_kernels.h"
#include "kernel_table.h"
#include "moe_kernels.h"
#include "quant_api.h"
#include "plane_net_api.h"
#include "spin_wait.h"
#include "thread_pool.h"

namespace {

using lk::KernelTable;
using namespace lk::napi_args;

int dtypeOf(const Napi::CallbackInfo& info, size_t i, const char* method) {
  const int64_t d = integer(info, i, method, "dtype");
  if (d > 2) typeError(info.Env(), std::string(method) + ": dtype code must be 0 (f32), 1 (f16) or 2 (bf16)");
  return int(d);
}

// A KV cache's dtype: the float types, or 3 (int8 with per-row scales, kv_int8.h).
int kvDtypeOf(const Napi::CallbackInfo& info, size_t i, const char* method) {
  const int64_t d = integer(info, i, method, "dtype");
  if (d > 3) typeError(info.Env(), std::string(method) + ": KV dtype code must be 0 (f32), 1 (f16), 2 (bf16) or 3 (int8)");
  return int(d);
}

napi_typedarray_type storageType(int dtype) {
  return dtype == lk::kF32 ? napi_float32_array : dtype == lk::kI8 ? napi_int8_array : napi_uint16_array;
}

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

class Kernels : public Napi::Addon<Kernels> {
 public:
  Kernels(Napi::Env env, Napi::Object exports) {
    const lk::VariantChoice choice = lk::chooseVariant();
    table_ = choice.table;
    reason_ = choice.reason;
    pool_ = std::make_unique<lk::ThreadPool>(defaultThreads());
    DefineAddon(exports, {
                             InstanceMethod("info", &Kernels::Info),
                             InstanceMethod("selectVariant", &Kernels::SelectVariant),
                             InstanceMethod("setThreads", &Kernels::SetThreads),
                             InstanceMethod("setPromptTiles", &Kernels::SetPromptTiles),
                             InstanceMethod("setReadAhead", &Kernels::SetReadAhead),
                             InstanceMethod("matmul", &Kernels::Matmul),
                             InstanceMethod("embedding", &Kernels::Embedding),
                             InstanceMethod("rmsnorm", &Kernels::Rmsnorm),
                             InstanceMethod("rope", &Kernels::Rope),
                             InstanceMethod("siluMul", &Kernels::SiluMul),
                             InstanceMethod("add", &Kernels::Add),
                             InstanceMethod("geluMul", &Kernels::GeluMul),
                             InstanceMethod("softcap", &Kernels::Softcap),
                             InstanceMethod("scale", &Kernels::Scale),
                             InstanceMethod("sigmoidGate", &Kernels::SigmoidGate),
                             InstanceMethod("softmax", &Kernels::Softmax),
                             InstanceMethod("rowSoftmax", &Kernels::RowSoftmax),
                             InstanceMethod("argmax", &Kernels::Argmax),
                             InstanceMethod("drawIndex", &Kernels::DrawIndex),
                             InstanceMethod("topK", &Kernels::TopK),
                             InstanceMethod("nucleusCandidates", &Kernels::NucleusCandidates),
                             InstanceMethod("kvWrite", &Kernels::KvWrite),
                             InstanceMethod("attention", &Kernels::Attention),
                             InstanceMethod("attentionReadPattern", &Kernels::AttentionReadPattern),
                             InstanceMethod("mergeAttention", &Kernels::MergeAttention),
                             InstanceMethod("attentionSinks", &Kernels::AttentionSinks),
                             InstanceMethod("streamRead", &Kernels::StreamRead),
                             InstanceMethod("fmaPeak", &Kernels::FmaPeak),
                             InstanceMethod("bf16DotPeak", &Kernels::Bf16DotPeak),
                             InstanceMethod("tilePeak", &Kernels::TilePeak),
                             InstanceMethod("byteDotPeak", &Kernels::ByteDotPeak),
                             InstanceMethod("adviseHugePages", &Kernels::AdviseHugePages),
                             InstanceMethod("populatePages", &Kernels::PopulatePages),
                             InstanceMethod("allowedCpus", &Kernels::AllowedCpus),
                             InstanceMethod("bindProcessToCpus", &Kernels::BindProcessToCpus),
                             InstanceMethod("setPureSpin", &Kernels::SetPureSpin),
                             InstanceMethod("pureSpin", &Kernels::PureSpin),
                             InstanceMethod("outputPosted", &Kernels::OutputPosted),
                             InstanceMethod("outputSent", &Kernels::OutputSent),
                             InstanceMethod("outputWaiting", &Kernels::OutputWaiting),
                             InstanceMethod("lineGap", &Kernels::LineGap),
                             InstanceMethod("expertSet", &Kernels::ExpertSetNew),
                             InstanceMethod("groupedMatmul", &Kernels::GroupedMatmul),
                             InstanceMethod("moeRoute", &Kernels::MoeRoute),
                             InstanceMethod("gatherRows", &Kernels::GatherRows),
                             InstanceMethod("moeCombine", &Kernels::MoeCombine),
                             InstanceMethod("expertBias", &Kernels::ExpertBias),
                             InstanceMethod("swigluClamped", &Kernels::SwigluClamped),
                         });
    dp_ = std::make_unique<lk::dp::Api>(&table_, pool_.get());
    dp_->registerFunctions(env, exports);
    quant_ = std::make_unique<lk::quant::Api>(&table_, pool_.get());
    quant_->registerFunctions(env, exports);
    planeNet_ = std::make_unique<lk::pn::Api>();
    planeNet_->registerFunctions(env, exports);
    (void)env;
  }

 private:
  static int defaultThreads() {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : int(std::min(n, 256u));
  }

  int threads() const { return pool_->size(); }

  // Splits [0, n) into tasks of at least `grain` items, at most a few per thread.
  template <class F>
  void parallelRange(int64_t n, int64_t grain, F&& body) {
    if (n <= 0) return;
    const int64_t nTasks = std::max<int64_t>(1, std::min<int64_t>(ceilDiv(n, grain), int64_t(threads()) * 4));
    const int64_t per = ceilDiv(n, nTasks);
    pool_->forEach(ceilDiv(n, per), [&](int64_t task) {
      const int64_t a = task * per;
      body(a, std::min(n, a + per));
    });
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("variant", table_->name);
    o.Set("reason", reason_);
    // Products on bf16 weights round their activations to bf16 (vdpbf16ps; see bf16_dot.h).
    o.Set("bf16Dot", table_->dotLoop != nullptr);
    // Grouped-query attention on a bf16 cache through vdpbf16ps (queries and probabilities rounded).
    o.Set("bf16DotAttention", table_->bf16DotAttention);
    // Batched products on bf16 weights through AMX tiles (amx_bf16.h), real or emulated.
    o.Set("tiles", table_->tileLoop != nullptr);
    // The smallest batch whose bf16 products take the packed paths (the tiles, where present).
    o.Set("bf16PackedFrom", double(table_->bf16PackedFrom));
    o.Set("int8Attention", table_->int8Attention());
    // Whether the streaming kernels ask for what they read ahead in software now.
    o.Set("readAhead", lk::readAhead());
    o.Set("readAheadBf16Dot", lk::readAheadBf16Dot());
    o.Set("threads", threads());
    Napi::Array cpu = Napi::Array::New(env);
    uint32_t i = 0;
    for (const auto& f : lk::cpuFeatures()) cpu.Set(i++, f);
    o.Set("cpu", cpu);
    Napi::Array variants = Napi::Array::New(env);
    i = 0;
    for (const auto& v : lk::supportedVariants()) variants.Set(i++, v);
    o.Set("supported", variants);
    Napi::Array emulated = Napi::Array::New(env);
    i = 0;
    for (const auto& v : lk::emulatedVariants()) emulated.Set(i++, v);
    o.Set("emulated", emulated);
    return o;
  }

  void SelectVariant(const Napi::CallbackInfo& info) {
    if (!info[0].IsString()) typeError(info.Env(), "selectVariant: name must be a string");
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    const KernelTable* t = lk::variantTable(name);
    if (!t) rangeError(info.Env(), "selectVariant: variant '" + name + "' is unknown or unsupported by this CPU");
    table_ = t;
    reason_ = "selected by selectVariant('" + name + "')";
  }

  void SetThreads(const Napi::CallbackInfo& info) {
    pool_->resize(int(std::min<int64_t>(integer(info, 0, "setThreads", "n", 1), 256)));
  }

  // setPromptTiles(on): whether prompt runs go through the tiled kernel where the variant has it
  // (on by default); off, every token takes the per-token kernel: the benchmarks' comparison.
  void SetPromptTiles(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsBoolean()) typeError(info.Env(), "setPromptTiles: on must be a boolean");
    runner_.setTiles(info[0].As<Napi::Boolean>().Value());
  }

  // setReadAhead(on): the streaming kernels (decode attention on float caches, products of up to
  // kSmallBatch tokens on float weights) ask for what they read ahead in software (true), leave it
  // to the hardware prefetcher (false), or do what this CPU gains by (null, the default:
  // read_ahead_policy.h). Process-wide: the benchmarks' A/B.
  void SetReadAhead(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !(info[0].IsBoolean() || info[0].IsNull()))
      typeError(info.Env(), "setReadAhead: on must be a boolean or null");
    lk::setReadAhead(info[0].IsNull() ? -1 : info[0].As<Napi::Boolean>().Value() ? 1 : 0);
  }

  // matmul(out, x, w, dtype, rows, cols, nTokens, bias?)
  void Matmul(const Napi::CallbackInfo& info) {
    const char* m = "matmul";
    const int dtype = dtypeOf(info, 3, m);
    lk::MatmulArgs a{};
    a.dtype = dtype;
    a.readAhead = lk::readAhead();
    a.rows = integer(info, 4, m, "rows", 1);
    a.cols = integer(info, 5, m, "cols", 1);
    a.nTokens = integer(info, 6, m, "nTokens");
    a.out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, a.nTokens * a.rows).data);
    a.x = static_cast<const float*>(array(info, 1, m, "x", napi_float32_array, a.nTokens * a.cols).data);
    a.w = array(info, 2, m, "w", storageType(dtype), a.rows * a.cols).data;
    a.bias = present(info, 7) ? static_cast<const float*>(array(info, 7, m, "bias", napi_float32_array, a.rows).data)
                              : nullptr;
    if (a.nTokens == 0) return;
    const KernelTable* k = table_;
    const bool batched = lk::takesPacked(*k, dtype, a.nTokens);
    if (batched) {
      // The batched path reads x packed k-major per group of tokens; packed once here, not per slice.
      const int64_t groups = lk::tokenGroups(a.nTokens);
      packedX_.resize(size_t(groups * a.cols * lk::kTokenGroup));
      float* xt = packedX_.data();
      pool_->forEach(groups, [&](int64_t g) { k->packTokens(xt, a.x, a.nTokens, a.cols, g, g + 1, dtype); });
      a.xt = xt;
    }
    // Row slices: for a batch, 96 rows (whole panels of row tiles; a panel's weights are read from
    // memory once per group of tokens and from cache by the next). One token: 32 slices per
    // thread, so the thread that finishes last waits for at most a thirty-second of the call (with
    // 8 per thread a decode step of a 1B model ran about 8% slower), but no slice under
    // kMinSliceBytes of weights: a slice is read as four streams (matvecRange), and a small matrix
    // cut 64 ways gives streams a few KiB long (a 135M model's decode step took about a fifth
    // longer).
    constexpr int64_t kMinSliceBytes = 128 << 10;
    const int64_t grain = a.nTokens == 1 ? 16 : batched ? 96 : 64;
    if (a.rows * a.cols * a.nTokens < 65536) return k->matmul(a, 0, a.rows);
    const int64_t rowBytes = a.cols * (dtype == lk::kF32 ? 4 : 2);
    int64_t per = grain;
    if (a.nTokens == 1)
      per = std::max({grain, ceilDiv(a.rows, int64_t(threads()) * 32), ceilDiv(kMinSliceBytes, rowBytes)});
    per = std::min(per, std::max<int64_t>(4, ceilDiv(a.rows, int64_t(threads()) * 2)));
    // Whole row tiles per slice: 4 rows for the streaming tiles, and for the batched ones a multiple
    // of both variants' tile heights (6 rows on AVX2, 12 on AVX-512).
    const int64_t tileRows = batched ? 12 : 4;
    per = ceilDiv(per, tileRows) * tileRows;
    pool_->forEach(ceilDiv(a.rows, per), [&](int64_t task) {
      const int64_t r0 = task * per;
      k->matmul(a, r0, std::min(a.rows, r0 + per));
    });
  }

  // embedding(out, table, dtype, vocab, dim, tokens, nTokens)
  void Embedding(const Napi::CallbackInfo& info) {
    const char* m = "embedding";
    const int dtype = dtypeOf(info, 2, m);
    const int64_t vocab = integer(info, 3, m, "vocab", 1);
    const int64_t dim = integer(info, 4, m, "dim", 1);
    const int64_t n = integer(info, 6, m, "nTokens");
    float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, n * dim).data);
    const void* table = array(info, 1, m, "table", storageType(dtype), vocab * dim).data;
    const int32_t* tokens = static_cast<const int32_t*>(array(info, 5, m, "tokens", napi_int32_array, n).data);
    for (int64_t t = 0; t < n; t++)
      if (tokens[t] < 0 || tokens[t] >= vocab)
        rangeError(info.Env(), "embedding: tokens[" + std::to_string(t) + "] = " + std::to_string(tokens[t]) +
                                   " is outside [0, " + std::to_string(vocab) + ")");
    const KernelTable* k = table_;
    parallelRange(n, std::max<int64_t>(1, 32768 / dim),
                  [&](int64_t a, int64_t b) { k->embedding(out, table, dtype, dim, tokens, a, b); });
  }

  // rmsnorm(out, x, weight, nTokens, dim, eps)
  void Rmsnorm(const Napi::CallbackInfo& info) {
    const char* m = "rmsnorm";
    const int64_t n = integer(info, 3, m, "nTokens");
    const int64_t dim = integer(info, 4, m, "dim", 1);
    const float eps = float(number(info, 5, m, "eps"));
    float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, n * dim).data);
    const float* x = static_cast<const float*>(array(info, 1, m, "x", napi_float32_array, n * dim).data);
    const float* w = static_cast<const float*>(array(info, 2, m, "weight", napi_float32_array, dim).data);
    const KernelTable* k = table_;
    parallelRange(n, std::max<int64_t>(1, 32768 / dim), [&](int64_t a, int64_t b) { k->rmsnorm(out, x, w, dim, eps, a, b); });
  }

  // rope(x, positions, nTokens, nHeads, headDim, cos, sin, rotaryDim = headDim)
  void Rope(const Napi::CallbackInfo& info) {
    const char* m = "rope";
    const int64_t n = integer(info, 2, m, "nTokens");
    const int64_t nHeads = integer(info, 3, m, "nHeads", 1);
    const int64_t headDim = integer(info, 4, m, "headDim", 2);
    if (headDim % 2) typeError(info.Env(), "rope: headDim must be even");
    const int64_t rotaryDim = info.Length() > 7 && !info[7].IsUndefined() ? integer(info, 7, m, "rotaryDim", 2) : headDim;
    if (rotaryDim % 2 || rotaryDim > headDim)
      rangeError(info.Env(), "rope: rotaryDim must be even and at most headDim (" + std::to_string(headDim) +
                                 "), got " + std::to_string(rotaryDim));
    const int64_t half = rotaryDim / 2;
    float* x = static_cast<float*>(array(info, 0, m, "x", napi_float32_array, n * nHeads * headDim).data);
    const int32_t* pos = static_cast<const int32_t*>(array(info, 1, m, "positions", napi_int32_array, n).data);
    const Span c = array(info, 5, m, "cos", napi_float32_array, half);
    const Span s = array(info, 6, m, "sin", napi_float32_array, half);
    const int64_t maxPos = int64_t(std::min(c.length, s.length)) / half;
    for (int64_t t = 0; t < n; t++)
      if (pos[t] < 0 || pos[t] >= maxPos)
        rangeError(info.Env(), "rope: positions[" + std::to_string(t) + "] = " + std::to_string(pos[t]) +
                                   " is outside the tables [0, " + std::to_string(maxPos) + ")");
    const KernelTable* k = table_;
    const float* cp = static_cast<const float*>(c.data);
    const float* sp = static_cast<const float*>(s.data);
    parallelRange(n, std::max<int64_t>(1, 32768 / (nHeads * headDim)),
                  [&](int64_t a, int64_t b) { k->rope(x, pos, nHeads, headDim, rotaryDim, cp, sp, a, b); });
  }

  void SiluMul(const Napi::CallbackInfo& info) {
    const char* m = "siluMul";
    const int64_t n = integer(info, 3, m, "n");
    float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, n).data);
    const float* g = static_cast<const float*>(array(info, 1, m, "gate", napi_float32_array, n).data);
    const float* u = static_cast<const float*>(array(info, 2, m, "up", napi_float32_array, n).data);
    const KernelTable* k = table_;
    parallelRange(n, 32768, [&](int64_t a, int64_t b) { k->siluMul(out, g, u, a, b); });
  }

  void Add(const Napi::CallbackInfo& info) {
    const char* m = "add";
    const int64_t n = integer(info, 3, m, "n");
    float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, n).data);
    const float* a = static_cast<const float*>(array(info, 1, m, "a", napi_float32_array, n).data);
    const float* b = static_cast<const float*>(array(info, 2, m, "b", napi_float32_array, n).data);
    const KernelTable* k = table_;
    parallelRange(n, 65536, [&](int64_t i0, int64_t i1) { k->add(out, a, b, i0, i1); });
  }

  // geluMul(out, gate, up, n)
  void GeluMul(const Napi::CallbackInfo& info) {
    const char* m = "geluMul";
    const int64_t n = integer(info, 3, m, "n");
    float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, n).data);
    const float* g = static_cast<const float*>(array(info, 1, m, "gate", napi_float32_array, n).data);
    const float* u = static_cast<const float*>(array(info, 2, m, "up", napi_float32_array, n).data);
    parallelRange(n, 16384, [&](int64_t a, int64_t b) { table_->geluMul(out, g, u, a, b); });
  }

  // softcap(out, x, cap, n) and scale(out, x, factor, n)
  void Softcap(const Napi::CallbackInfo& info) { Unary(info, "softcap", "cap", true); }
  void Scale(const Napi::CallbackInfo& info) { Unary(info, "scale", "factor", false); }

  // sigmoidGate(out, x, gate, rows, width): out[r, :] = sigmoid(gate[r]) * x[r, :].
  void SigmoidGate(const Napi::CallbackInfo& info) {
    const char* m = "sigmoidGate";
    const int64_t rows = integer(info, 3, m, "rows");
    const int64_t w = integer(info, 4, m, "width", 1);
    float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, rows * w).data);
    const float* x = static_cast<const float*>(array(info, 1, m, "x", napi_float32_array, rows * w).data);
    const float* gate = static_cast<const float*>(array(info, 2, m, "gate", napi_float32_array, rows).data);
    parallelRange(rows, std::max<int64_t>(1, 16384 / w), [&](int64_t a, int64_t b) { lk::sigmoidGate(out, x, gate, w, a, b); });
  }

  void Unary(const Napi::CallbackInfo& info, const char* m, const char* what, bool cap) {
    const int64_t n = integer(info, 3, m, "n");
    const float c = float(number(info, 2, m, what));
    if (cap && !(c > 0)) rangeError(info.Env(), std::string(m) + ": cap must be positive");
    float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, n).data);
    const float* x = static_cast<const float*>(array(info, 1, m, "x", napi_float32_array, n).data);
    parallelRange(n, 16384, [&](int64_t a, int64_t b) {
      if (cap) table_->softcap(out, x, c, a, b);
      else lk::scale(out, x, c, a, b);
    });
  }

  // softmax(out, x, nRows, dim, log)
  void Softmax(const Napi::CallbackInfo& info) {
    const char* m = info[4].ToBoolean() ? "logSoftmax" : "softmax";
    const bool log = info[4].ToBoolean();
    const int64_t rows = integer(info, 2, m, "nRows");
    const int64_t dim = integer(info, 3, m, "dim", 1);
    float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, rows * dim).data);
    const float* x = static_cast<const float*>(array(info, 1, m, "x", napi_float32_array, rows * dim).data);
    const KernelTable* k = table_;
    parallelRange(rows, std::max<int64_t>(1, 32768 / dim), [&](int64_t a, int64_t b) { k->softmax(out, x, dim, log, 1.0f, a, b); });
  }

  // ---- The sampler's rows (sampling_kernels.h): one row, on the calling thread ----

  // rowSoftmax(out, x, off, n, scale): out[0, n) = softmax(scale * x[off, off + n)), scale > 0.
  void RowSoftmax(const Napi::CallbackInfo& info) {
    const char* m = "rowSoftmax";
    const int64_t off = integer(info, 2, m, "off");
    const int64_t n = integer(info, 3, m, "n", 1);
    const double scale = number(info, 4, m, "scale");
    if (!(scale > 0) || !std::isfinite(scale)) rangeError(info.Env(), "rowSoftmax: scale must be positive and finite");
    float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, n).data);
    const float* x = static_cast<const float*>(array(info, 1, m, "x", napi_float32_array, off + n).data);
    table_->softmax(out, x + off, n, false, float(scale), 0, 1);
  }

  // argmax(x, off, n): the first index in [0, n) of the largest of x[off, off + n).
  Napi::Value Argmax(const Napi::CallbackInfo& info) {
    const char* m = "argmax";
    const int64_t off = integer(info, 1, m, "off");
    const int64_t n = integer(info, 2, m, "n", 1);
    const float* x = static_cast<const float*>(array(info, 0, m, "x", napi_float32_array, off + n).data);
    return Napi::Number::New(info.Env(), double(table_->argmax(x + off, n)));
  }

  // drawIndex(p, n, u): where a draw u in [0, 1) lands in the probabilities p[0, n).
  Napi::Value DrawIndex(const Napi::CallbackInfo& info) {
    const char* m = "drawIndex";
    const int64_t n = integer(info, 1, m, "n", 1);
    const double u = number(info, 2, m, "u");
    if (!(u >= 0 && u < 1)) rangeError(info.Env(), "drawIndex: u must be in [0, 1)");
    const float* p = static_cast<const float*>(array(info, 0, m, "p", napi_float32_array, n).data);
    return Napi::Number::New(info.Env(), double(table_->drawIndex(p, n, u)));
  }

  // topK(x, off, n, k, idx): the k largest of x[off, off + n) (ties: lower index), their indices
  // in [0, n) into idx[0, k), unordered; returns k (n where k >= n).
  Napi::Value TopK(const Napi::CallbackInfo& info) {
    const char* m = "topK";
    const int64_t off = integer(info, 1, m, "off");
    const int64_t n = integer(info, 2, m, "n", 1);
    const int64_t k = std::min(n, integer(info, 3, m, "k", 1));
    if (n > INT32_MAX) rangeError(info.Env(), "topK: n is too large");
    const float* x = static_cast<const float*>(array(info, 0, m, "x", napi_float32_array, off + n).data);
    int32_t* idx = static_cast<int32_t*>(array(info, 4, m, "idx", napi_int32_array, k).data);
    return Napi::Number::New(info.Env(), double(table_->topK(x + off, n, k, idx)));
  }

  // nucleusCandidates(p, n, topP, idx): top-p's candidates among the probabilities p[0, n) (a
  // superset of the nucleus, by probability bucket) into idx, in index order; returns their count.
  Napi::Value NucleusCandidates(const Napi::CallbackInfo& info) {
    const char* m = "nucleusCandidates";
    const int64_t n = integer(info, 1, m, "n", 1);
    const double topP = number(info, 2, m, "topP");
    if (!(topP > 0 && topP <= 1)) rangeError(info.Env(), "nucleusCandidates: topP must be in (0, 1]");
    if (n > INT32_MAX) rangeError(info.Env(), "nucleusCandidates: n is too large");
    const float* p = static_cast<const float*>(array(info, 0, m, "p", napi_float32_array, n).data);
    int32_t* idx = static_cast<int32_t*>(array(info, 3, m, "idx", napi_int32_array, n).data);
    return Napi::Number::New(info.Env(), double(table_->nucleusCandidates(p, n, topP, idx)));
  }

  // ---- Mixtures of experts (see moe_kernels.h) ----

  // expertSet(ws, dtype, rows, cols): a handle to the experts' weights (raw pointers; the caller
  // keeps the arrays alive as long as the handle).
  Napi::Value ExpertSetNew(const Napi::CallbackInfo& info) {
    const char* m = "expertSet";
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) typeError(env, "expertSet: ws must be an array of typed arrays");
    const Napi::Array ws = info[0].As<Napi::Array>();
    auto set = std::make_unique<lk::ExpertSet>();
    set->dtype = dtypeOf(info, 1, m);
    set->rows = integer(info, 2, m, "rows", 1);
    set->cols = integer(info, 3, m, "cols", 1);
    if (ws.Length() == 0) typeError(env, "expertSet: ws is empty");
    for (uint32_t e = 0; e < ws.Length(); e++) {
      const Napi::Value v = ws.Get(e);
      napi_typedarray_type type;
      size_t length = 0, offset = 0;
      void* data = nullptr;
      napi_value ab;
      if (!v.IsTypedArray() || napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset) != napi_ok ||
          type != storageType(set->dtype) || int64_t(length) < set->rows * set->cols)
        typeError(env, "expertSet: ws[" + std::to_string(e) + "] must be a " + typeName(storageType(set->dtype)) +
                           " of at least rows * cols elements");
      set->w.push_back(data);
    }
    return Napi::External<lk::ExpertSet>::New(env, set.release(), [](Napi::Env, lk::ExpertSet* p) { delete p; });
  }

  // groupedMatmul(out, x, set, expertStart): expert e's product over rows [start[e], start[e+1]).
  // One pool job runs the row slices of every expert that has rows, so each expert's weights are
  // read once per call and small experts share the threads.
  void GroupedMatmul(const Napi::CallbackInfo& info) {
    const char* m = "groupedMatmul";
    Napi::Env env = info.Env();
    if (!info[2].IsExternal()) typeError(env, "groupedMatmul: set must be a handle from expertSet");
    const lk::ExpertSet& set = *info[2].As<Napi::External<lk::ExpertSet>>().Data();
    const int64_t E = int64_t(set.w.size());
    const int32_t* start = static_cast<const int32_t*>(array(info, 3, m, "expertStart", napi_int32_array, E + 1).data);
    for (int64_t e = 0; e < E; e++)
      if (start[e] < 0 || start[e + 1] < start[e])
        rangeError(env, "groupedMatmul: expertStart must be non-negative and non-decreasing (expert " +
                            std::to_string(e) + ")");
    const int64_t total = start[E];
    float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, total * set.rows).data);
    const float* x = static_cast<const float*>(array(info, 1, m, "x", napi_float32_array, total * set.cols).data);
    moeJobs_.clear();
    std::vector<int64_t>& packAt = moePackAt_;
    packAt.clear();
    int64_t packed = 0;
    for (int64_t e = 0; e < E; e++) {
      const int64_t n = start[e + 1] - start[e];
      if (n == 0) continue;
      lk::MatmulArgs a{};
      a.readAhead = lk::readAhead();
      a.out = out + start[e] * set.rows;
      a.x = x + start[e] * set.cols;
      a.w = set.w[size_t(e)];
      a.dtype = set.dtype;
      a.rows = set.rows;
      a.cols = set.cols;
      a.nTokens = n;
      moeJobs_.push_back(a);
      const bool packs = lk::takesPacked(*table_, set.dtype, n);
      packAt.push_back(packs ? packed : -1);
      if (packs) packed += lk::tokenGroups(n) * set.cols * lk::kTokenGroup;
    }
    if (moeJobs_.empty()) return;
    const KernelTable* k = table_;
    if (packed > 0) {
      packedX_.resize(size_t(packed));
      for (size_t j = 0; j < moeJobs_.size(); j++) {
        if (packAt[j] < 0) continue;
        lk::MatmulArgs& a = moeJobs_[j];
        float* xt = packedX_.data() + packAt[j];
        pool_->forEach(lk::tokenGroups(a.nTokens), [&](int64_t g) { k->packTokens(xt, a.x, a.nTokens, a.cols, g, g + 1, a.dtype); });
        a.xt = xt;
      }
    }
    // Enough slices over all experts for every thread, in whole row tiles (as Matmul cuts them).
    const int64_t active = int64_t(moeJobs_.size());
    const int64_t slices = std::max<int64_t>(1, ceilDiv(int64_t(threads()) * 4, active));
    moeTasks_.clear();
    for (int64_t j = 0; j < active; j++) {
      const int64_t tile = moeJobs_[size_t(j)].xt != nullptr ? 12 : 4;
      const int64_t per = ceilDiv(std::max<int64_t>(16, ceilDiv(set.rows, slices)), tile) * tile;
      for (int64_t r0 = 0; r0 < set.rows; r0 += per) moeTasks_.push_back({j, r0, std::min(set.rows, r0 + per)});
    }
    pool_->forEach(int64_t(moeTasks_.size()), [&](int64_t t) {
      const MoeTask& task = moeTasks_[size_t(t)];
      k->matmul(moeJobs_[size_t(task.job)], task.r0, task.r1);
    });
  }

  // moeRoute(logits, nTokens, nExperts, topK, normalizeTopK, slotWeight, slotRow, rowToken, expertStart[,
  //          selectionBias[, sigmoid[, scale]]])
  void MoeRoute(const Napi::CallbackInfo& info) {
    const char* m = "moeRoute";
    const int64_t n = integer(info, 1, m, "nTokens");
    const int64_t E = integer(info, 2, m, "nExperts", 1);
    const int64_t topK = integer(info, 3, m, "topK", 1);
    if (topK > E) rangeError(info.Env(), "moeRoute: topK " + std::to_string(topK) + " exceeds nExperts " + std::to_string(E));
    const bool normalize = info[4].ToBoolean();
    const float* logits = static_cast<const float*>(array(info, 0, m, "logits", napi_float32_array, n * E).data);
    float* weight = static_cast<float*>(array(info, 5, m, "slotWeight", napi_float32_array, n * topK).data);
    int32_t* slotRow = static_cast<int32_t*>(array(info, 6, m, "slotRow", napi_int32_array, n * topK).data);
    int32_t* rowToken = static_cast<int32_t*>(array(info, 7, m, "rowToken", napi_int32_array, n * topK).data);
    int32_t* start = static_cast<int32_t*>(array(info, 8, m, "expertStart", napi_int32_array, E + 1).data);
    const float* bias =
        present(info, 9) ? static_cast<const float*>(array(info, 9, m, "selectionBias", napi_float32_array, E).data)
                         : nullptr;
    const bool sigmoid = present(info, 10) && info[10].ToBoolean();
    const double scale = present(info, 11) ? info[11].ToNumber().DoubleValue() : 1.0;
    if (!std::isfinite(scale)) rangeError(info.Env(), "moeRoute: scale must be finite");
    lk::moeRoute(logits, n, E, topK, normalize, bias, sigmoid, float(scale), weight, slotRow, rowToken, start);
  }

  // gatherRows(out, x, rows, nRows, dim)
  void GatherRows(const Napi::CallbackInfo& info) {
    const char* m = "gatherRows";
    const int64_t n = integer(info, 3, m, "nRows");
    const int64_t dim = integer(info, 4, m, "dim", 1);
    float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, n * dim).data);
    const Span xs = array(info, 1, m, "x", napi_float32_array, 0);
    const int32_t* rows = static_cast<const int32_t*>(array(info, 2, m, "rows", napi_int32_array, n).data);
    const int64_t xRows = int64_t(xs.length) / dim;
    for (int64_t r = 0; r < n; r++)
      if (rows[r] < 0 || rows[r] >= xRows)
        rangeError(info.Env(), "gatherRows: rows[" + std::to_string(r) + "] = " + std::to_string(rows[r]) +
                                   " is outside x (" + std::to_string(xRows) + " rows)");
    const float* x = static_cast<const float*>(xs.data);
    parallelRange(n, std::max<int64_t>(1, 32768 / dim), [&](int64_t a, int64_t b) { lk::gatherRows(out, x, rows, dim, a, b); });
  }

  // expertBias(out, bias, expertStart, nExperts, width): rows grouped by expert get their bias row.
  void ExpertBias(const Napi::CallbackInfo& info) {
    const char* m = "expertBias";
    const int64_t E = integer(info, 3, m, "nExperts", 1);
    const int64_t width = integer(info, 4, m, "width", 1);
    const int32_t* start = static_cast<const int32_t*>(array(info, 2, m, "expertStart", napi_int32_array, E + 1).data);
    const Span outs = array(info, 0, m, "out", napi_float32_array, 0);
    const float* bias = static_cast<const float*>(array(info, 1, m, "bias", napi_float32_array, E * width).data);
    const int64_t rows = int64_t(outs.length) / width;
    for (int64_t e = 0; e < E; e++)
      if (start[e] < 0 || start[e] > start[e + 1] || start[e + 1] > rows)
        rangeError(info.Env(), "expertBias: expertStart[" + std::to_string(e) + ".." + std::to_string(e + 1) +
                                   "] is not an ordered range inside out (" + std::to_string(rows) + " rows)");
    float* out = static_cast<float*>(outs.data);
    parallelRange(E, 1, [&](int64_t a, int64_t b) { lk::expertBias(out, bias, start, width, a, b); });
  }

  // swigluClamped(out, gate, up, n, alpha, limit)
  void SwigluClamped(const Napi::CallbackInfo& info) {
    const char* m = "swigluClamped";
    const int64_t n = integer(info, 3, m, "n");
    float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, n).data);
    const float* g = static_cast<const float*>(array(info, 1, m, "gate", napi_float32_array, n).data);
    const float* u = static_cast<const float*>(array(info, 2, m, "up", napi_float32_array, n).data);
    if (!info[4].IsNumber() || !info[5].IsNumber()) typeError(info.Env(), "swigluClamped: alpha and limit must be numbers");
    const float alpha = float(info[4].As<Napi::Number>().DoubleValue());
    const float limit = float(info[5].As<Napi::Number>().DoubleValue());
    if (!std::isfinite(alpha) || !(limit > 0) || !std::isfinite(limit))
      typeError(info.Env(), "swigluClamped: alpha must be finite and limit positive");
    parallelRange(n, 16384, [&](int64_t a, int64_t b) { table_->swigluClamped(out, g, u, alpha, limit, a, b); });
  }

  // moeCombine(out, y, slotRow, slotWeight, nTokens, topK, dim)
  void MoeCombine(const Napi::CallbackInfo& info) {
    const char* m = "moeCombine";
    const int64_t n = integer(info, 4, m, "nTokens");
    const int64_t topK = integer(info, 5, m, "topK", 1);
    const int64_t dim = integer(info, 6, m, "dim", 1);
    float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, n * dim).data);
    const Span ys = array(info, 1, m, "y", napi_float32_array, 0);
    const int32_t* slotRow = static_cast<const int32_t*>(array(info, 2, m, "slotRow", napi_int32_array, n * topK).data);
    const float* weight = static_cast<const float*>(array(info, 3, m, "slotWeight", napi_float32_array, n * topK).data);
    const int64_t yRows = int64_t(ys.length) / dim;
    for (int64_t s = 0; s < n * topK; s++)
      if (slotRow[s] < 0 || slotRow[s] >= yRows)
        rangeError(info.Env(), "moeCombine: slotRow[" + std::to_string(s) + "] = " + std::to_string(slotRow[s]) +
                                   " is outside y (" + std::to_string(yRows) + " rows)");
    const float* y = static_cast<const float*>(ys.data);
    parallelRange(n, std::max<int64_t>(1, 32768 / (dim * topK)),
                  [&](int64_t a, int64_t b) { lk::moeCombine(out, y, slotRow, weight, topK, dim, a, b); });
  }

  // Reads the cache geometry arguments starting at index i: kc, vc, dtype, numBlocks, blockSize,
  // nKvHeads, headDim; an int8 cache's kScale and vScale at `scalesAt` and the next.
  lk::KvArgs cacheArgs(const Napi::CallbackInfo& info, size_t i, const char* m, int64_t* numBlocks, size_t scalesAt) {
    lk::KvArgs c{};
    c.dtype = kvDtypeOf(info, i + 2, m);
    *numBlocks = integer(info, i + 3, m, "cache.numBlocks");
    c.blockSize = integer(info, i + 4, m, "cache.blockSize", 1);
    c.nKvHeads = integer(info, i + 5, m, "cache.nKvHeads", 1);
    c.headDim = integer(info, i + 6, m, "cache.headDim", 1);
    const int64_t total = *numBlocks * c.nKvHeads * c.blockSize * c.headDim;
    c.k = array(info, i, m, "cache.k", storageType(c.dtype), total).data;
    c.v = array(info, i + 1, m, "cache.v", storageType(c.dtype), total).data;
    if (c.dtype == lk::kI8) {
      if (c.blockSize % lk::kI8Group)
        typeError(info.Env(), std::string(m) + ": an int8 cache needs a block size that is a multiple of " +
                                  std::to_string(lk::kI8Group) + ", got " + std::to_string(c.blockSize));
      const int64_t rows = *numBlocks * c.nKvHeads * c.blockSize;
      c.kScale = static_cast<float*>(array(info, scalesAt, m, "cache.kScale", napi_float32_array, rows).data);
      c.vScale = static_cast<float*>(array(info, scalesAt + 1, m, "cache.vScale", napi_float32_array, rows).data);
    }
    return c;
  }

  // kvWrite(kc, vc, dtype, numBlocks, blockSize, nKvHeads, headDim, k, v, slots, nTokens,
  //         kScale?, vScale? (int8))
  void KvWrite(const Napi::CallbackInfo& info) {
    const char* m = "kvWrite";
    int64_t numBlocks;
    const lk::KvArgs c = cacheArgs(info, 0, m, &numBlocks, 11);
    const int64_t n = integer(info, 10, m, "nTokens");
    const int64_t width = c.nKvHeads * c.headDim;
    const float* k = static_cast<const float*>(array(info, 7, m, "k", napi_float32_array, n * width).data);
    const float* v = static_cast<const float*>(array(info, 8, m, "v", napi_float32_array, n * width).data);
    const int32_t* slots = static_cast<const int32_t*>(array(info, 9, m, "slots", napi_int32_array, n).data);
    for (int64_t t = 0; t < n; t++)
      if (slots[t] >= numBlocks * c.blockSize)
        rangeError(info.Env(), "kvWrite: slots[" + std::to_string(t) + "] = " + std::to_string(slots[t]) +
                                   " is outside the cache (" + std::to_string(numBlocks * c.blockSize) + " slots)");
    table_->kvWrite(c, k, v, slots, 0, n);
  }

  // attention(out, q, kc, vc, dtype, numBlocks, blockSize, nKvHeads, headDim, blockTables,
  //           maxBlocksPerSeq, qSeq, ctxStart, ctxEnd, nTokens, nHeads, scale, lse?, softcap?,
  //           kScale?, vScale? (int8))
  void Attention(const Napi::CallbackInfo& info) {
    int64_t n;
    const lk::AttnArgs a = attentionArgs(info, "attention", n);
    runner_.run(table_, *pool_, a, n);
  }

  // attentionReadPattern(the arguments of attention): the decode kernel's reads of the same call
  // alone, nothing computed (out and lse untouched); returns the sum of the 64-bit words read (modulo
  // 2^64) as a BigInt: the benchmarks' limit of the read pattern. Int8 caches on their dot-product
  // paths; a TypeError where int8 attention widens.
  Napi::Value AttentionReadPattern(const Napi::CallbackInfo& info) {
    int64_t n;
    const lk::AttnArgs a = attentionArgs(info, "attentionReadPattern", n);
    uint64_t sum;
    if (!runner_.readPattern(table_, *pool_, a, n, &sum))
      typeError(info.Env(), std::string("attentionReadPattern: int8 attention widens on ") + table_->name +
                                " at head_dim " + std::to_string(a.cache.headDim) + "; its reads have no loads-only twin");
    return Napi::BigInt::New(info.Env(), sum);
  }

  // attention's (and attentionReadPattern's) arguments, checked; n: the call's query tokens.
  lk::AttnArgs attentionArgs(const Napi::CallbackInfo& info, const char* m, int64_t& n) {
    Napi::Env env = info.Env();
    int64_t numBlocks;
    lk::AttnArgs a{};
    a.cache = cacheArgs(info, 2, m, &numBlocks, 19);
    const int64_t bs = a.cache.blockSize, D = a.cache.headDim, nKv = a.cache.nKvHeads;
    a.maxBlocksPerSeq = integer(info, 10, m, "maxBlocksPerSeq", 1);
    n = integer(info, 14, m, "nTokens");
    a.nHeads = integer(info, 15, m, "nHeads", 1);
    a.scale = float(number(info, 16, m, "scale"));
    a.softcap = present(info, 18) ? float(number(info, 18, m, "softcap")) : 0.0f;
    a.readAhead = lk::readAhead();
    a.readAheadBf16Dot = lk::readAheadBf16Dot();
    if (!(a.softcap >= 0)) rangeError(env, std::string(m) + ": softcap must be 0 (none) or positive");
    if (a.nHeads % nKv) typeError(env, std::string(m) + ": nHeads must be a multiple of cache.nKvHeads");
    a.out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, n * a.nHeads * D).data);
    a.q = static_cast<const float*>(array(info, 1, m, "q", napi_float32_array, n * a.nHeads * D).data);
    const Span bt = array(info, 9, m, "blockTables", napi_int32_array, 0);
    a.blockTables = static_cast<const int32_t*>(bt.data);
    a.qSeq = static_cast<const int32_t*>(array(info, 11, m, "qSeq", napi_int32_array, n).data);
    a.ctxStart = static_cast<const int32_t*>(array(info, 12, m, "ctxStart", napi_int32_array, n).data);
    a.ctxEnd = static_cast<const int32_t*>(array(info, 13, m, "ctxEnd", napi_int32_array, n).data);
    a.lse = present(info, 17) ? static_cast<float*>(array(info, 17, m, "lse", napi_float32_array, n * a.nHeads).data)
                               : nullptr;
    // Every block a token will read must be a real block of the cache.
    const int64_t nSeqRows = int64_t(bt.length) / a.maxBlocksPerSeq;
    for (int64_t t = 0; t < n; t++) {
      const int64_t seq = a.qSeq[t], start = a.ctxStart[t], end = a.ctxEnd[t];
      if (seq < 0 || seq >= nSeqRows) rangeError(env, std::string(m) + ": qSeq[" + std::to_string(t) + "] has no row in blockTables");
      if (start < 0 || end < start || end > a.maxBlocksPerSeq * bs)
        rangeError(env, std::string(m) + ": token " + std::to_string(t) + " has an invalid range [ctxStart, ctxEnd) = [" + std::to_string(start) +
                            ", " + std::to_string(end) + ")");
      for (int64_t b = start / bs; start < end && b <= (end - 1) / bs; b++) {
        const int64_t block = a.blockTables[seq * a.maxBlocksPerSeq + b];
        if (block < 0 || block >= numBlocks)
          rangeError(env, std::string(m) + ": blockTables entry " + std::to_string(b) + " of sequence row " +
                              std::to_string(seq) + " = " + std::to_string(block) + " is outside the cache");
      }
    }
    return a;
  }

  // mergeAttention(outA, lseA, outB, lseB, nTokens, nHeads, headDim)
  void MergeAttention(const Napi::CallbackInfo& info) {
    const char* m = "mergeAttention";
    const int64_t n = integer(info, 4, m, "nTokens");
    const int64_t h = integer(info, 5, m, "nHeads", 1);
    const int64_t d = integer(info, 6, m, "headDim", 1);
    float* outA = static_cast<float*>(array(info, 0, m, "outA", napi_float32_array, n * h * d).data);
    float* lseA = static_cast<float*>(array(info, 1, m, "lseA", napi_float32_array, n * h).data);
    const float* outB = static_cast<const float*>(array(info, 2, m, "outB", napi_float32_array, n * h * d).data);
    const float* lseB = static_cast<const float*>(array(info, 3, m, "lseB", napi_float32_array, n * h).data);
    lk::AttentionRunner::merge(table_, *pool_, outA, lseA, outB, lseB, n * h, d);
  }

  // attentionSinks(out, lse, sinks, nTokens, nHeads, headDim)
  void AttentionSinks(const Napi::CallbackInfo& info) {
    const char* m = "attentionSinks";
    const int64_t n = integer(info, 3, m, "nTokens");
    const int64_t h = integer(info, 4, m, "nHeads", 1);
    const int64_t d = integer(info, 5, m, "headDim", 1);
    float* out = static_cast<float*>(array(info, 0, m, "out", napi_float32_array, n * h * d).data);
    float* lse = static_cast<float*>(array(info, 1, m, "lse", napi_float32_array, n * h).data);
    const float* sinks = static_cast<const float*>(array(info, 2, m, "sinks", napi_float32_array, h).data);
    lk::AttentionRunner::sinks(*pool_, out, lse, sinks, n, h, d);
  }

  // streamRead(x): sums x with every pool thread; benchmarks time it as the memory-read limit.
  Napi::Value StreamRead(const Napi::CallbackInfo& info) {
    const Span x = array(info, 0, "streamRead", "x", napi_float32_array, 0);
    const int64_t n = int64_t(x.length);
    const int64_t nTasks = int64_t(threads()) * 16;
    const int64_t per = ceilDiv(ceilDiv(n, nTasks), 64) * 64;
    partials_.assign(size_t(nTasks), 0.0);
    const float* p = static_cast<const float*>(x.data);
    const KernelTable* k = table_;
    pool_->forEach(nTasks, [&](int64_t t) {
      const int64_t a = std::min(n, t * per);
      partials_[size_t(t)] = k->streamSum(p, a, std::min(n, a + per));
    });
    double s = 0;
    for (double v : partials_) s += v;
    return Napi::Number::New(info.Env(), s);
  }

  // fmaPeak(rounds): the pool runs 16 tasks per thread of `rounds` rounds of independent FMA
  // chains each; returns the flops done (benchmarks time it as the arithmetic limit of this
  // variant and thread count).
  Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
    const int64_t rounds = integer(info, 0, "fmaPeak", "rounds", 1);
    // Many small tasks, so every thread is busy even if one wakes late.
    const int64_t n = int64_t(threads()) * 16;
    partials_.assign(size_t(n), 0.0);
    const KernelTable* k = table_;
    pool_->forEach(n, [&](int64_t t) { partials_[size_t(t)] = k->fmaLoop(rounds); });
    double sink = 0;
    for (double v : partials_) sink += v;
    // Per round: 10 chains x W lanes x 2 flops; the sink keeps the work observable.
    return Napi::Number::New(info.Env(), double(n) * double(rounds) * 20.0 * double(k->lanes) + (sink == 0.5 ? 1 : 0));
  }

  // bf16DotPeak(rounds): as fmaPeak with the variant's bf16 dot-product chains (vdpbf16ps);
  // returns the flops done, or 0 where the variant has no such instruction.
  Napi::Value Bf16DotPeak(const Napi::CallbackInfo& info) {
    return peakOf(info, "bf16DotPeak", table_->dotLoop, table_->dotFlopsPerRound);
  }

  // tilePeak(rounds): as bf16DotPeak with the variant's AMX tile chains (tdpbf16ps); 0 where the
  // variant has no tiles.
  Napi::Value TilePeak(const Napi::CallbackInfo& info) {
    return peakOf(info, "tilePeak", table_->tileLoop, table_->tileFlopsPerRound);
  }

  // byteDotPeak(rounds): as fmaPeak with the int8 tiles' byte-product chains (vpdpbusd, or
  // vpmaddubsw and vpmaddwd without VNNI; a multiply-add two operations); 0 on the portable build.
  Napi::Value ByteDotPeak(const Napi::CallbackInfo& info) {
    return peakOf(info, "byteDotPeak", table_->byteDotLoop, table_->byteDotOpsPerRound);
  }

  // 16 tasks per thread of `rounds` rounds of `loop`; the flops done, or 0 without a loop.
  Napi::Value peakOf(const Napi::CallbackInfo& info, const char* name, double (*loop)(int64_t), double flops) {
    const int64_t rounds = integer(info, 0, name, "rounds", 1);
    if (!loop) return Napi::Number::New(info.Env(), 0);
    const int64_t n = int64_t(threads()) * 16;
    partials_.assign(size_t(n), 0.0);
    pool_->forEach(n, [&](int64_t t) { partials_[size_t(t)] = loop(rounds); });
    double sink = 0;
    for (double v : partials_) sink += v;
    return Napi::Number::New(info.Env(), double(n) * double(rounds) * flops + (sink == 0.5 ? 1 : 0));
  }

  // The first argument as a typed array of any element type: where its data lies and its bytes.
  static std::pair<void*, size_t> typedArrayBytes(const Napi::CallbackInfo& info, const char* what) {
    napi_typedarray_type type;
    size_t length = 0, offset = 0;
    void* data = nullptr;
    napi_value ab;
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        napi_get_typedarray_info(info.Env(), info[0], &type, &length, &data, &ab, &offset) != napi_ok)
      typeError(info.Env(), what);
    size_t elem = 1;
    if (type == napi_float32_array || type == napi_int32_array || type == napi_uint32_array) elem = 4;
    else if (type == napi_uint16_array || type == napi_int16_array) elem = 2;
    else if (type == napi_float64_array) elem = 8;
    return {data, length * elem};
  }

  // lineGap(x): bytes from x's first element to the next 64-byte boundary (0 if it lies on one).
  // JavaScript cannot see addresses, and Node's large buffers start 16 bytes past a page; tensor
  // allocation (src/model/tensor.ts) asks this to place its views on cache lines.
  Napi::Value LineGap(const Napi::CallbackInfo& info) {
    const void* data = typedArrayBytes(info, "lineGap: x must be a typed array").first;
    return Napi::Number::New(info.Env(), double((64 - reinterpret_cast<uintptr_t>(data) % 64) % 64));
  }

  // adviseHugePages(x): asks Linux to back the 2 MiB-aligned interior of a large typed array with
  // transparent huge pages (THP in "madvise" mode honours only advised ranges). A KV cache is read
  // as scattered blocks of a few KiB, each on its own 4 KiB page otherwise: one TLB miss per block.
  // Effective for pages not yet touched (a fresh, lazily zeroed allocation). Returns the bytes
  // advised: 0 where unsupported, refused, or smaller than one huge page.
  Napi::Value AdviseHugePages(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto [data, bytes] = typedArrayBytes(info, "adviseHugePages: x must be a typed array");
    double advised = 0;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = uintptr_t(2) << 20;
    const uintptr_t base = reinterpret_cast<uintptr_t>(data);
    const uintptr_t a = (base + huge - 1) & ~(huge - 1);
    const uintptr_t b = (base + bytes) & ~(huge - 1);
    if (b > a && madvise(reinterpret_cast<void*>(a), b - a, MADV_HUGEPAGE) == 0) advised = double(b - a);
#endif
    return Napi::Number::New(env, advised);
  }

  // populatePages(x, byteOffset, byteLength) → bytes populated: faults in the whole pages of x's
  // bytes [byteOffset, byteOffset + byteLength) without changing them (Linux's
  // MADV_POPULATE_WRITE, one call for the range; where the kernel lacks it, one atomic no-op
  // update a page, which leaves concurrent writers' bytes intact). A KV cache is a fresh, lazily
  // zeroed allocation: left to fault page by page inside kvWrite, each first touch of a 4 KiB page
  // cost about 14 us on a VM host (0.3 GB/s), against 8 GB/s populated in one call
  // (BENCHMARKS.md). The partial pages at the ends are left alone.
  Napi::Value PopulatePages(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto [data, bytes] = typedArrayBytes(info, "populatePages: x must be a typed array");
    const int64_t from = lk::napi_args::integer(info, 1, "populatePages", "byteOffset");
    const int64_t length = lk::napi_args::integer(info, 2, "populatePages", "byteLength");
    if (from + length > int64_t(bytes))
      lk::napi_args::rangeError(env, "populatePages: bytes [" + std::to_string(from) + ", " +
                                         std::to_string(from + length) + ") lie past the array's " +
                                         std::to_string(bytes));
    double populated = 0;
#if defined(__linux__)
    const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
    const uintptr_t start = reinterpret_cast<uintptr_t>(data) + uintptr_t(from);
    const uintptr_t a = (start + page - 1) & ~(page - 1), b = (start + uintptr_t(length)) & ~(page - 1);
    if (b > a) {
#if !defined(MADV_POPULATE_WRITE)
      constexpr int MADV_POPULATE_WRITE = 23;  // Linux 5.14's value, for older headers
#endif
      if (madvise(reinterpret_cast<void*>(a), b - a, MADV_POPULATE_WRITE) != 0)
        for (uintptr_t p = a; p < b; p += page)
          __atomic_fetch_or(reinterpret_cast<char*>(p), char(0), __ATOMIC_RELAXED);
      populated = double(b - a);
    }
#else
    (void)data;
#endif
    return Napi::Number::New(env, populated);
  }

  // allowedCpus() → the CPUs this process may run on, ascending ([] where the OS cannot say).
  Napi::Value AllowedCpus(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    for (int c : lk::allowedCpus()) out.Set(i++, c);
    return out;
  }

  // bindProcessToCpus(cpus) → threads bound: every thread of this process (the pool's, Node's, the
  // caller's) and those they start later run on `cpus` only; an Error where the OS refuses.
  Napi::Value BindProcessToCpus(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* m = "bindProcessToCpus";
    if (info.Length() < 1 || !info[0].IsArray()) typeError(env, std::string(m) + ": cpus must be an array of CPU numbers");
    const Napi::Array a = info[0].As<Napi::Array>();
    std::vector<int> cpus;
    for (uint32_t i = 0; i < a.Length(); i++) {
      const Napi::Value v = a.Get(i);
      const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0 && d <= 1e6) || d != std::floor(d))
        typeError(env, std::string(m) + ": cpus[" + std::to_string(i) + "] must be a non-negative integer");
      cpus.push_back(int(d));
    }
    std::string error;
    const int bound = lk::bindProcessToCpus(cpus, error);
    if (bound < 0) throw Napi::Error::New(env, std::string(m) + ": " + error);
    return Napi::Number::New(env, bound);
  }

  // setPureSpin(us): how long this process's data-plane waits spin on their core alone before
  // offering it to other threads at every step (spin_wait.h).
  void SetPureSpin(const Napi::CallbackInfo& info) {
    lk::setExchangePureSpinNs(std::min<int64_t>(integer(info, 0, "setPureSpin", "us"), 10'000'000) * 1000);
  }

  Napi::Value PureSpin(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(lk::exchangePureSpinNs().load(std::memory_order_relaxed)) / 1000);
  }

  // outputPosted(): counts a batch of token events the engine thread posts to the HTTP thread and
  // returns the count; outputSent(n): the HTTP thread has written batches up to n (spin_wait.h;
  // counts wrap at 2^32, and a mark older than the latest is ignored).
  Napi::Value OutputPosted(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(lk::outputPosted().fetch_add(1, std::memory_order_relaxed) + 1));
  }

  void OutputSent(const Napi::CallbackInfo& info) {
    const double n = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    if (!(n >= 0 && n <= 4294967295.0) || n != std::floor(n))
      typeError(info.Env(), "outputSent: n must be a count from outputPosted");
    lk::markOutputSent(uint32_t(n));
  }

  Napi::Value OutputWaiting(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), lk::outputWaiting());
  }

  std::vector<double> partials_;
  lk::AttentionRunner runner_;  // attention dispatch and its flash-decoding scratch
  lk::LineVector<float> packedX_;  // a batched matmul's activations, packed by token group
  // groupedMatmul's per-call plan: one product per expert with rows, where its packed rows start
  // (-1: not packed), and the row slices run as one pool job. They grow once, then are reused.
  struct MoeTask {
    int64_t job, r0, r1;
  };
  std::vector<lk::MatmulArgs> moeJobs_;
  std::vector<int64_t> moePackAt_;
  std::vector<MoeTask> moeTasks_;
  const KernelTable* table_;
  std::string reason_;
  std::unique_ptr<lk::ThreadPool> pool_;
  std::unique_ptr<lk::quant::Api> quant_;  // the quantized products (quant_api.h)
  std::unique_ptr<lk::pn::Api> planeNet_;  // the model plane over TCP (plane_net_api.h)
  std::unique_ptr<lk::dp::Api> dp_;  // the native data plane (declared last: it stops its threads first)
};

}  // namespace

NODE_API_ADDON(Kernels)
