// The Node-API face of the native data plane (dpXxx functions on the kernels addon): JavaScript
// creates and maps the segment, then hands it here with the KV cache (worker side) or uses the
// post/wait/take calls from the engine thread (model side). Handles are small integers.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "dataplane_client.h"
#include "dataplane_tcp.h"
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
    std::unique_ptr<Endpoint> client;
    Napi::ObjectReference segment;  // shared memory only
  };
  struct WorkerEntry {
    std::unique_ptr<Worker> worker;     // shared memory: the loop on the model side's segment
    std::unique_ptr<TcpBridge> bridge;  // TCP: the bridge and its loop on a private segment
    std::vector<Napi::ObjectReference> keep;  // the segment and the caches the threads read
  };

  Napi::Value SegmentBytes(const Napi::CallbackInfo& info);
  Napi::Value ClientOpen(const Napi::CallbackInfo& info);
  Napi::Value ClientAttach(const Napi::CallbackInfo& info);
  Napi::Value SettleTag(const Napi::CallbackInfo& info);
  Napi::Value Resync(const Napi::CallbackInfo& info);
  Napi::Value ClientClose(const Napi::CallbackInfo& info);
  Napi::Value PostStep(const Napi::CallbackInfo& info);
  Napi::Value PostQ(const Napi::CallbackInfo& info);
  Napi::Value PostKv(const Napi::CallbackInfo& info);
  Napi::Value PostKvTake(const Napi::CallbackInfo& info);
  Napi::Value Ready(const Napi::CallbackInfo& info);
  Napi::Value Take(const Napi::CallbackInfo& info);
  Napi::Value Wait(const Napi::CallbackInfo& info);
  Napi::Value ClientInfo(const Napi::CallbackInfo& info);
  Napi::Value Serve(const Napi::CallbackInfo& info);
  Napi::Value TcpClientOpen(const Napi::CallbackInfo& info);
  Napi::Value ServeTcp(const Napi::CallbackInfo& info);
  /** The cache arguments of dpServe/dpServeTcp from index i: kCaches, vCaches, dtype, … spinUs. */
  WorkerConfig workerConfig(const Napi::CallbackInfo& info, size_t i, const char* m, WorkerEntry& entry);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value WorkerInfo(const Napi::CallbackInfo& info);
  Napi::Value HostJitter(const Napi::CallbackInfo& info);

  Endpoint& client(const Napi::CallbackInfo& info, size_t i);
  /** A KV posting as dpPostKv's arguments give it, checked. */
  struct KvPost {
    int32_t tag, layer, nRows;
    int64_t width, colOff, timeoutNs;
    const float *k, *v;
    const int32_t* rows;
    void post(Endpoint& c) const { c.postKv(tag, layer, k, v, rows, nRows, width, colOff, timeoutNs); }
  };
  /** dpPostKv's arguments 1-9; `bound`: the row count of another tensor the same rows index. */
  KvPost kvPost(const Napi::CallbackInfo& info, const char* m, Endpoint& c, int64_t bound);

  const KernelTable* const* table_;
  const ThreadPool* pool_;
  std::vector<ClientEntry> clients_;
  std::vector<WorkerEntry> workers_;
  std::vector<Client*> waitShm_;
  std::vector<TcpClient*> waitTcp_;
};

}  // namespace lk::dp
