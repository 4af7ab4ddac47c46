// The Node-API face of the native data plane (dpXxx functions on the kernels addon): JavaScript
// creates and maps the segment, then hands it here with the KV cache (worker side) or uses the
// post/wait/take calls from the engine thread (model side). Handles are small integers.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "dataplane_client.h"
#include "dataplane_worker.h"
#include "kernel_table.h"
#include "thread_pool.h"

namespace lk::dp {

class Api {
 public:
  /** `table` is the addon's current variant (it may change), `pool` gives the default thread count. */
  Api(const KernelTable* const* table, const ThreadPool* pool) : table_(table), pool_(pool) {}
  ~Api();
  void registerFunctions(Napi::Env env, Napi::Object exports);

 private:
  struct ClientEntry {
    std::unique_ptr<Client> client;
    Napi::ObjectReference segment;
  };
  struct WorkerEntry {
    std::unique_ptr<Worker> worker;
    std::vector<Napi::ObjectReference> keep;  // the segment and the caches the thread reads
  };

  Napi::Value SegmentBytes(const Napi::CallbackInfo& info);
  Napi::Value ClientOpen(const Napi::CallbackInfo& info);
  Napi::Value ClientClose(const Napi::CallbackInfo& info);
  Napi::Value PostStep(const Napi::CallbackInfo& info);
  Napi::Value PostQ(const Napi::CallbackInfo& info);
  Napi::Value PostKv(const Napi::CallbackInfo& info);
  Napi::Value Ready(const Napi::CallbackInfo& info);
  Napi::Value Take(const Napi::CallbackInfo& info);
  Napi::Value Wait(const Napi::CallbackInfo& info);
  Napi::Value ClientInfo(const Napi::CallbackInfo& info);
  Napi::Value Serve(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value WorkerInfo(const Napi::CallbackInfo& info);

  Client& client(const Napi::CallbackInfo& info, size_t i);

  const KernelTable* const* table_;
  const ThreadPool* pool_;
  std::vector<ClientEntry> clients_;
  std::vector<WorkerEntry> workers_;
  std::vector<Client*> waitScratch_;
};

}  // namespace lk::dp
