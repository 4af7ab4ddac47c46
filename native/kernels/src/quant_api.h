// The Node-API face of the quantized products (quant_kernels.h): quantMatmul, quantGroupedMatmul
// (a mixture's experts, each over its own rows of the gathered tokens), quantEmbedding,
// quantPackedBytes and quantPack (weights with 16 rows in the lanes, quant_pack.h),
// quantInfo and selectQuantVariant on the kernels addon. The quantized variant follows the addon's
// current variant (its VNNI flavour where the CPU has one) unless selectQuantVariant pins one.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "kernel_table.h"
#include "quant_kernels.h"
#include "thread_pool.h"

namespace lk::quant {

class Api {
 public:
  /** `table` is the addon's current variant (it may change); `pool` runs the row slices. */
  Api(const KernelTable* const* table, ThreadPool* pool) : table_(table), pool_(pool) {}
  void registerFunctions(Napi::Env env, Napi::Object exports);

 private:
  Napi::Value Matmul(const Napi::CallbackInfo& info);
  Napi::Value GroupedMatmul(const Napi::CallbackInfo& info);
  void quantizeRows(const QuantTable* q, const float* x, int64_t cols, int64_t nTokens);
  Napi::Value Embedding(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value SelectVariant(const Napi::CallbackInfo& info);
  const QuantTable* current();
  const QuantTable* followed();  // the addon's variant's table, whatever is pinned
  void run(const QuantTable* q, const QuantMatmulArgs& a, int64_t wBytes);
  void runPacked(const QuantTable* q, const QuantMatmulArgs& a, const uint8_t* packed, int64_t wBytes);
  Napi::Value PackedBytes(const Napi::CallbackInfo& info);
  Napi::Value Pack(const Napi::CallbackInfo& info);

  const KernelTable* const* table_;
  ThreadPool* pool_;
  const QuantTable* pinned_ = nullptr;  // set by selectQuantVariant
  const KernelTable* followed_ = nullptr;
  const QuantTable* following_ = nullptr;
  std::vector<uint8_t> xq_;  // a call's quantized activations (actStride bytes a token); grows once
};

}  // namespace lk::quant
