#include "dataplane_api.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "napi_args.h"

namespace lk::dp {

using namespace lk::napi_args;

namespace {

Napi::ArrayBuffer segmentArg(const Napi::CallbackInfo& info, size_t i, const char* m) {
  if (!info[i].IsArrayBuffer()) typeError(info.Env(), std::string(m) + ": segment must be an ArrayBuffer");
  return info[i].As<Napi::ArrayBuffer>();
}

Geometry geometryArgs(const Napi::CallbackInfo& info, size_t i, const char* m) {
  Geometry g{};
  g.numTags = int32Arg(info, i, m, "numTags", 1);
  g.maxTokens = int32Arg(info, i + 1, m, "maxTokens", 1);
  g.maxSeqs = int32Arg(info, i + 2, m, "maxSeqs", 1);
  g.maxBlocksPerSeq = int32Arg(info, i + 3, m, "maxBlocksPerSeq", 1);
  g.qWidth = int32Arg(info, i + 4, m, "qWidth", 1);
  g.kvWidth = int32Arg(info, i + 5, m, "kvWidth", 1);
  g.numLayers = int32Arg(info, i + 6, m, "numLayers", 1);
  if (g.numTags > 64) rangeError(info.Env(), std::string(m) + ": at most 64 micro-batches");
  return g;
}

// The rows argument: null for rows 0..nRows-1, else an Int32Array whose entries index rows of a
// tensor holding `tensorRows` rows.
const int32_t* rowsArg(const Napi::CallbackInfo& info, size_t i, const char* m, int32_t nRows, int64_t tensorRows) {
  if (!present(info, i)) {
    if (nRows > tensorRows) rangeError(info.Env(), std::string(m) + ": more rows than the tensor holds");
    return nullptr;
  }
  const auto* rows = static_cast<const int32_t*>(array(info, i, m, "rows", napi_int32_array, nRows).data);
  for (int32_t r = 0; r < nRows; r++)
    if (rows[r] < 0 || rows[r] >= tensorRows)
      rangeError(info.Env(), std::string(m) + ": rows[" + std::to_string(r) + "] = " + std::to_string(rows[r]) +
                                 " is outside the tensor's " + std::to_string(tensorRows) + " rows");
  return rows;
}

// A float tensor of rows of `width` floats, of which [colOff, colOff + used) are taken: its row count.
int64_t tensorRows(const Napi::CallbackInfo& info, const Span& s, const char* m, int64_t width, int64_t colOff,
                   int64_t used) {
  if (colOff + used > width) rangeError(info.Env(), std::string(m) + ": columns exceed the row width");
  return int64_t(s.length) / width;
}

Napi::Object counters(Napi::Env env, const WorkerCounters& c) {
  Napi::Object o = Napi::Object::New(env);
  static const char* names[] = {"not attached", "running", "failed", "stopped"};
  o.Set("state", names[c.state]);
  o.Set("error", c.error);
  o.Set("spinSeconds", c.spinSeconds);
  o.Set("computeSeconds", c.computeSeconds);
  o.Set("steps", double(c.steps));
  o.Set("layers", double(c.layers));
  return o;
}

}  // namespace

Api::~Api() {
  for (auto& w : workers_) {
    if (w.bridge) w.bridge->stop();
    if (w.worker) w.worker->stop();
    for (auto& r : w.keep) r.SuppressDestruct();
  }
  for (auto& c : clients_) c.segment.SuppressDestruct();
}

void Api::registerFunctions(Napi::Env env, Napi::Object exports) {
  exportMethods<Api>(env, exports, this,
                     {{"dpSegmentBytes", &Api::SegmentBytes}, {"dpClientOpen", &Api::ClientOpen},
                      {"dpClientAttach", &Api::ClientAttach},   {"dpSettleTag", &Api::SettleTag},
                      {"dpClientClose", &Api::ClientClose},     {"dpPostStep", &Api::PostStep},
                      {"dpPostQ", &Api::PostQ},                 {"dpPostKv", &Api::PostKv},
                      {"dpPostKvTake", &Api::PostKvTake},
                      {"dpReady", &Api::Ready},                 {"dpTake", &Api::Take},
                      {"dpWait", &Api::Wait},                   {"dpClientInfo", &Api::ClientInfo},
                      {"dpServe", &Api::Serve},                 {"dpStop", &Api::Stop},
                      {"dpWorkerInfo", &Api::WorkerInfo},       {"dpTcpClientOpen", &Api::TcpClientOpen},
                      {"dpServeTcp", &Api::ServeTcp},           {"dpHostJitter", &Api::HostJitter},
                      {"dpResync", &Api::Resync}});
}

Endpoint& Api::client(const Napi::CallbackInfo& info, size_t i) {
  const int64_t id = integer(info, i, "data plane", "client");
  if (id >= int64_t(clients_.size()) || !clients_[size_t(id)].client)
    rangeError(info.Env(), "data plane: client " + std::to_string(id) + " is not open");
  return *clients_[size_t(id)].client;
}

// dpSegmentBytes(numTags, maxTokens, maxSeqs, maxBlocksPerSeq, qWidth, kvWidth, numLayers)
Napi::Value Api::SegmentBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(segmentBytes(geometryArgs(info, 0, "dpSegmentBytes"))));
}

// dpClientOpen(segment, numTags, maxTokens, maxSeqs, maxBlocksPerSeq, qWidth, kvWidth, numLayers, spinUs) → id
Napi::Value Api::ClientOpen(const Napi::CallbackInfo& info) {
  const char* m = "dpClientOpen";
  Napi::ArrayBuffer seg = segmentArg(info, 0, m);
  const Geometry g = geometryArgs(info, 1, m);
  const int64_t spinUs = integer(info, 8, m, "spinUs");
  ClientEntry e{std::make_unique<Client>(seg.Data(), seg.ByteLength(), g, spinUs * 1000),
                Napi::Persistent(seg.As<Napi::Object>())};
  clients_.push_back(std::move(e));
  return Napi::Number::New(info.Env(), double(clients_.size() - 1));
}

// dpClientAttach(segment, numTags, …, numLayers, spinUs) → id: a segment another model-side
// process created (a model worker of a rotation); its header must match the geometry.
Napi::Value Api::ClientAttach(const Napi::CallbackInfo& info) {
  const char* m = "dpClientAttach";
  Napi::ArrayBuffer seg = segmentArg(info, 0, m);
  const Geometry g = geometryArgs(info, 1, m);
  const int64_t spinUs = integer(info, 8, m, "spinUs");
  std::unique_ptr<Client> c;
  try {
    c = std::make_unique<Client>(seg.Data(), seg.ByteLength(), g, spinUs * 1000, Client::Attach{});
  } catch (const std::exception& e) {
    rangeError(info.Env(), std::string(m) + ": " + e.what());
  }
  clients_.push_back(ClientEntry{std::move(c), Napi::Persistent(seg.As<Napi::Object>())});
  return Napi::Number::New(info.Env(), double(clients_.size() - 1));
}

// dpSettleTag(id, tag, timeoutMs) → whether the worker drained the micro-batch's postings in time
Napi::Value Api::SettleTag(const Napi::CallbackInfo& info) {
  const char* m = "dpSettleTag";
  Endpoint& e = client(info, 0);
  const int32_t tag = int32Arg(info, 1, m, "tag");
  if (tag >= e.geometry().numTags) rangeError(info.Env(), std::string(m) + ": tag out of range");
  const int64_t timeout = integer(info, 2, m, "timeoutMs") * 1000000;
  const bool ok = e.kind() == Endpoint::Kind::kShm ? static_cast<Client&>(e).settleTag(tag, timeout)
                                                   : static_cast<TcpClient&>(e).settleTag(tag, timeout);
  return Napi::Boolean::New(info.Env(), ok);
}

// dpResync(id): forgets replies received and never taken (TCP; shared memory keeps its counters in
// the segment, where settling fixed them)
Napi::Value Api::Resync(const Napi::CallbackInfo& info) {
  client(info, 0).resync();
  return info.Env().Undefined();
}

Napi::Value Api::ClientClose(const Napi::CallbackInfo& info) {
  client(info, 0);
  ClientEntry& e = clients_[size_t(info[0].As<Napi::Number>().Int64Value())];
  e.client.reset();
  e.segment.Reset();
  return info.Env().Undefined();
}

// dpPostStep(id, tag, nTokens, nSeqs, seqStart, positions, tables, windowTables | null, timeoutMs)
Napi::Value Api::PostStep(const Napi::CallbackInfo& info) {
  const char* m = "dpPostStep";
  Endpoint& c = client(info, 0);
  const int32_t tag = int32Arg(info, 1, m, "tag");
  const int32_t n = int32Arg(info, 2, m, "nTokens", 1);
  const int32_t nSeqs = int32Arg(info, 3, m, "nSeqs", 1);
  const auto* seqStart = static_cast<const int32_t*>(array(info, 4, m, "seqStart", napi_int32_array, nSeqs + 1).data);
  const auto* positions = static_cast<const int32_t*>(array(info, 5, m, "positions", napi_int32_array, n).data);
  const int64_t tableLen = int64_t(nSeqs) * c.geometry().maxBlocksPerSeq;
  const auto* tables = static_cast<const int32_t*>(array(info, 6, m, "tables", napi_int32_array, tableLen).data);
  const int32_t* windowTables =
      present(info, 7) ? static_cast<const int32_t*>(array(info, 7, m, "windowTables", napi_int32_array, tableLen).data)
                       : nullptr;
  c.postStep(tag, n, nSeqs, seqStart, positions, tables, windowTables, integer(info, 8, m, "timeoutMs") * 1000000);
  return info.Env().Undefined();
}

// dpPostQ(id, tag, layer, q, rows, nRows, srcWidth, colOff, timeoutMs)
Napi::Value Api::PostQ(const Napi::CallbackInfo& info) {
  const char* m = "dpPostQ";
  Endpoint& c = client(info, 0);
  const int32_t nRows = int32Arg(info, 5, m, "nRows", 1);
  const int64_t width = integer(info, 6, m, "srcWidth", 1), colOff = integer(info, 7, m, "colOff");
  const Span q = array(info, 3, m, "q", napi_float32_array, 0);
  const int32_t* rows = rowsArg(info, 4, m, nRows, tensorRows(info, q, m, width, colOff, c.geometry().qWidth));
  c.postQ(int32Arg(info, 1, m, "tag"), int32Arg(info, 2, m, "layer"), static_cast<const float*>(q.data), rows, nRows,
          width, colOff, integer(info, 8, m, "timeoutMs") * 1000000);
  return info.Env().Undefined();
}

// dpPostKv(id, tag, layer, k, v, rows, nRows, srcWidth, colOff, timeoutMs[, replyTo]): replyTo (TCP)
// is the peer the OUT goes to (1 + r for model worker r; default 0, the poster's front end)
Napi::Value Api::PostKv(const Napi::CallbackInfo& info) {
  Endpoint& c = client(info, 0);
  const KvPost kv = kvPost(info, "dpPostKv", c, INT64_MAX);
  if (info.Length() > 10 && !info[10].IsUndefined()) c.routeNextOut(int32Arg(info, 10, "dpPostKv", "replyTo"));
  kv.post(c);
  return info.Env().Undefined();
}

// dpPostKvTake(id, tag, layer, k, v, rows, nRows, srcWidth, colOff, timeoutMs, out, dstWidth,
// outColOff) → the compute µs of the OUT, taken into out's rows, or -1 when it was not ready
// within the client's spin budget (then dpWait and dpTake, as after dpPostKv). Shared memory only.
// A layer of one worker at depth 1 in one call: on the engine thread, between layers that stream
// their weights through the caches, each call and each object it touches costs about a µs.
Napi::Value Api::PostKvTake(const Napi::CallbackInfo& info) {
  const char* m = "dpPostKvTake";
  Endpoint& c = client(info, 0);
  if (c.kind() != Endpoint::Kind::kShm) typeError(info.Env(), "dpPostKvTake: a shared-memory client only");
  const int64_t width = integer(info, 11, m, "dstWidth", 1), colOff = integer(info, 12, m, "outColOff");
  const Span out = array(info, 10, m, "out", napi_float32_array, 0);
  // Every argument is checked before the post: a bad one throws with nothing posted.
  const KvPost kv = kvPost(info, m, c, tensorRows(info, out, m, width, colOff, c.geometry().qWidth));
  kv.post(c);
  const int32_t micros =
      static_cast<Client&>(c).spinTake(kv.tag, static_cast<float*>(out.data), kv.rows, kv.nRows, width, colOff);
  return Napi::Number::New(info.Env(), micros);
}

Api::KvPost Api::kvPost(const Napi::CallbackInfo& info, const char* m, Endpoint& c, int64_t bound) {
  KvPost p;
  p.tag = int32Arg(info, 1, m, "tag");
  p.layer = int32Arg(info, 2, m, "layer");
  p.nRows = int32Arg(info, 6, m, "nRows", 1);
  p.width = integer(info, 7, m, "srcWidth", 1);
  p.colOff = integer(info, 8, m, "colOff");
  p.timeoutNs = integer(info, 9, m, "timeoutMs") * 1000000;
  const Span k = array(info, 3, m, "k", napi_float32_array, 0);
  const Span v = array(info, 4, m, "v", napi_float32_array, 0);
  p.k = static_cast<const float*>(k.data);
  p.v = static_cast<const float*>(v.data);
  const int64_t kvRows = std::min({tensorRows(info, k, m, p.width, p.colOff, c.geometry().kvWidth),
                                   tensorRows(info, v, m, p.width, p.colOff, c.geometry().kvWidth), bound});
  p.rows = rowsArg(info, 5, m, p.nRows, kvRows);
  return p;
}

// dpReady(id, tag) → boolean
Napi::Value Api::Ready(const Napi::CallbackInfo& info) {
  Endpoint& c = client(info, 0);
  const int32_t tag = int32Arg(info, 1, "dpReady", "tag");
  if (tag >= c.geometry().numTags) rangeError(info.Env(), "dpReady: tag out of range");
  return Napi::Boolean::New(info.Env(), c.ready(tag));
}

// dpTake(id, tag, out, rows, nRows, dstWidth, colOff) → compute µs the worker reported
Napi::Value Api::Take(const Napi::CallbackInfo& info) {
  const char* m = "dpTake";
  Endpoint& c = client(info, 0);
  const int32_t nRows = int32Arg(info, 4, m, "nRows");
  const int64_t width = integer(info, 5, m, "dstWidth", 1), colOff = integer(info, 6, m, "colOff");
  const Span out = array(info, 2, m, "out", napi_float32_array, 0);
  const int32_t* rows = rowsArg(info, 3, m, nRows, tensorRows(info, out, m, width, colOff, c.geometry().qWidth));
  const int32_t micros =
      c.take(int32Arg(info, 1, m, "tag"), static_cast<float*>(out.data), rows, nRows, width, colOff);
  return Napi::Number::New(info.Env(), micros);
}

// dpWait(ids: Int32Array, n, timeoutMs[, tagMask]) → index of a client with a ready reply, -1
// timed out, -(2 + i) client i's worker failed. tagMask (shared memory): only those micro-batches.
Napi::Value Api::Wait(const Napi::CallbackInfo& info) {
  const char* m = "dpWait";
  const int32_t n = int32Arg(info, 1, m, "n", 1);
  const auto* ids = static_cast<const int32_t*>(array(info, 0, m, "ids", napi_int32_array, n).data);
  waitShm_.clear();
  waitTcp_.clear();
  for (int32_t i = 0; i < n; i++) {
    if (ids[i] < 0 || size_t(ids[i]) >= clients_.size() || !clients_[size_t(ids[i])].client)
      rangeError(info.Env(), "dpWait: client " + std::to_string(ids[i]) + " is not open");
    Endpoint* e = clients_[size_t(ids[i])].client.get();
    if (e->kind() == Endpoint::Kind::kShm) waitShm_.push_back(static_cast<Client*>(e));
    else waitTcp_.push_back(static_cast<TcpClient*>(e));
  }
  if (!waitShm_.empty() && !waitTcp_.empty()) typeError(info.Env(), "dpWait: shared-memory and TCP clients in one wait");
  const int64_t timeout = integer(info, 2, m, "timeoutMs") * 1000000;
  uint32_t mask = ~0u;
  if (info.Length() > 3 && !info[3].IsUndefined()) mask = uint32_t(integer(info, 3, m, "tagMask"));
  const int code = waitShm_.empty() ? TcpClient::waitAny(waitTcp_.data(), n, timeout, mask)
                                    : Client::waitAny(waitShm_.data(), n, timeout, mask);
  return Napi::Number::New(info.Env(), code);
}

Napi::Value Api::ClientInfo(const Napi::CallbackInfo& info) {
  Endpoint& c = client(info, 0);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("spinSeconds", c.spinSeconds());
  o.Set("failure", c.failure());
  return o;
}

WorkerConfig Api::workerConfig(const Napi::CallbackInfo& info, size_t i, const char* m, WorkerEntry& entry) {
  Napi::Env env = info.Env();
  if (!info[i].IsArray() || !info[i + 1].IsArray())
    typeError(env, std::string(m) + ": kCaches and vCaches must be arrays");
  Napi::Array ks = info[i].As<Napi::Array>(), vs = info[i + 1].As<Napi::Array>();
  WorkerConfig c;
  c.dtype = int(integer(info, i + 2, m, "dtype"));
  if (c.dtype > 3) typeError(env, std::string(m) + ": KV dtype code must be 0, 1, 2 or 3 (int8)");
  c.numBlocks = integer(info, i + 3, m, "numBlocks", 1);
  c.windowBlocks = integer(info, i + 4, m, "windowBlocks");
  c.blockSize = integer(info, i + 5, m, "blockSize", 1);
  c.nKvHeads = integer(info, i + 6, m, "nKvHeads", 1);
  c.headDim = integer(info, i + 7, m, "headDim", 1);
  c.nHeads = integer(info, i + 8, m, "nHeads", 1);
  c.maxContext = integer(info, i + 9, m, "maxContext", 1);
  c.threads = int(integer(info, i + 13, m, "threads"));
  if (c.threads == 0) c.threads = pool_->size();
  c.spinNs = integer(info, i + 14, m, "spinUs") * 1000;
  c.table = *table_;
  if (c.nHeads % c.nKvHeads) typeError(env, std::string(m) + ": nHeads must be a multiple of nKvHeads");
  if (ks.Length() != vs.Length() || ks.Length() == 0)
    typeError(env, std::string(m) + ": one k and one v cache per layer");
  // The per-layer attention settings, once for the loop's life (never per posting).
  const int32_t layers = int32_t(ks.Length());
  auto perLayer = [&](size_t at, const char* name, napi_typedarray_type type) {
    const Span s = array(info, at, m, name, type, layers);
    if (s.length != size_t(layers))
      typeError(env, std::string(m) + ": " + name + " has " + std::to_string(s.length) + " entries for " +
                         std::to_string(layers) + " layers");
    return s.data;
  };
  const auto* windows = static_cast<const int32_t*>(perLayer(i + 10, "windows", napi_int32_array));
  const auto* scales = static_cast<const float*>(perLayer(i + 11, "scales", napi_float32_array));
  const auto* softcaps = static_cast<const float*>(perLayer(i + 12, "softcaps", napi_float32_array));
  c.windows.assign(windows, windows + layers);
  c.scales.assign(scales, scales + layers);
  c.softcaps.assign(softcaps, softcaps + layers);
  const int64_t perBlock = c.nKvHeads * c.blockSize * c.headDim;
  const napi_typedarray_type type =
      c.dtype == kF32 ? napi_float32_array : c.dtype == kI8 ? napi_int8_array : napi_uint16_array;
  const bool int8 = c.dtype == kI8;
  if (int8 && c.blockSize % kI8Group)
    typeError(env, std::string(m) + ": an int8 cache needs a block size that is a multiple of " +
                       std::to_string(kI8Group));
  if (int8 && (!info[i + 15].IsArray() || !info[i + 16].IsArray() ||
               info[i + 15].As<Napi::Array>().Length() != ks.Length() ||
               info[i + 16].As<Napi::Array>().Length() != ks.Length()))
    typeError(env, std::string(m) + ": an int8 cache needs kScales and vScales, one per layer");
  // One typed array of `want` with at least `need` elements, kept alive as long as the loop.
  auto take = [&](Napi::Value v, napi_typedarray_type want, int64_t need, uint32_t l, const char* what) {
    napi_typedarray_type t;
    size_t length, offset;
    void* data;
    napi_value ab;
    if (!v.IsTypedArray() || napi_get_typedarray_info(env, v, &t, &length, &data, &ab, &offset) != napi_ok ||
        t != want || int64_t(length) < need)
      typeError(env, std::string(m) + ": layer " + std::to_string(l) + "'s " + what +
                         " is not a typed array of the geometry");
    entry.keep.push_back(Napi::Persistent(v.As<Napi::Object>()));
    return data;
  };
  // Attention sinks: [layers, nHeads] logits, or absent / empty for none.
  if (info.Length() > i + 17 && !info[i + 17].IsUndefined()) {
    const Span s = array(info, i + 17, m, "sinks", napi_float32_array, 0);
    const auto* f = static_cast<const float*>(s.data);
    if (s.length != 0 && s.length != size_t(layers) * size_t(c.nHeads))
      typeError(env, std::string(m) + ": sinks has " + std::to_string(s.length) + " entries for " +
                         std::to_string(layers) + " layers of " + std::to_string(c.nHeads) + " heads");
    c.sinks.assign(f, f + s.length);
  }
  for (uint32_t l = 0; l < ks.Length(); l++) {
    const int64_t blocks = c.windowBlocks > 0 && c.windows[l] > 0 ? c.windowBlocks : c.numBlocks;
    c.kCaches.push_back(take(ks.Get(l), type, perBlock * blocks, l, "k cache"));
    c.vCaches.push_back(take(vs.Get(l), type, perBlock * blocks, l, "v cache"));
    if (!int8) continue;
    const int64_t rows = blocks * c.nKvHeads * c.blockSize;
    c.kScales.push_back(static_cast<float*>(
        take(info[i + 15].As<Napi::Array>().Get(l), napi_float32_array, rows, l, "k scales")));
    c.vScales.push_back(static_cast<float*>(
        take(info[i + 16].As<Napi::Array>().Get(l), napi_float32_array, rows, l, "v scales")));
  }
  return c;
}

// dpServe(segment, kCaches[], vCaches[], dtype, numBlocks, windowBlocks, blockSize, nKvHeads, headDim,
//         nHeads, maxContext, windows: Int32Array, scales: Float32Array, softcaps: Float32Array,
//         threads, spinUs, kScales[]?, vScales[]? (int8: Float32Array per layer), sinks?: Float32Array
//         ([layers, nHeads] attention-sink logits; empty: none)) → id. A windowed
//         layer's cache holds windowBlocks blocks when that is > 0.
Napi::Value Api::Serve(const Napi::CallbackInfo& info) {
  const char* m = "dpServe";
  Napi::ArrayBuffer seg = segmentArg(info, 0, m);
  WorkerEntry entry;
  entry.keep.push_back(Napi::Persistent(seg.As<Napi::Object>()));
  WorkerConfig c = workerConfig(info, 1, m, entry);
  c.segment = seg.Data();
  c.segmentBytes = seg.ByteLength();
  entry.worker = std::make_unique<Worker>(std::move(c));
  entry.worker->start();
  workers_.push_back(std::move(entry));
  return Napi::Number::New(info.Env(), double(workers_.size() - 1));
}

// dpServeTcp(host, token, numTags, maxTokens, maxSeqs, maxBlocksPerSeq, qWidth, kvWidth, numLayers,
//            kCaches[], vCaches[], dtype, …, spinUs) → { id, port }: listens on host:0 for the one
// model side that proves the token
Napi::Value Api::ServeTcp(const Napi::CallbackInfo& info) {
  const char* m = "dpServeTcp";
  if (!info[0].IsString() || !info[1].IsString()) typeError(info.Env(), "dpServeTcp: host and token must be strings");
  const std::string host = info[0].As<Napi::String>().Utf8Value();
  const std::string token = info[1].As<Napi::String>().Utf8Value();
  const Geometry g = geometryArgs(info, 2, m);
  WorkerEntry entry;
  WorkerConfig c = workerConfig(info, 9, m, entry);
  entry.bridge = std::make_unique<TcpBridge>(std::move(c), g, host, token);
  const int port = entry.bridge->port();
  entry.bridge->start();
  workers_.push_back(std::move(entry));
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("id", double(workers_.size() - 1));
  o.Set("port", port);
  return o;
}

// dpTcpClientOpen(host, port, token, numTags, maxTokens, maxSeqs, maxBlocksPerSeq, qWidth, kvWidth,
//                 numLayers, spinUs, timeoutMs[, peer]) → id; peer 0: the front end, 1 + r: model worker r
Napi::Value Api::TcpClientOpen(const Napi::CallbackInfo& info) {
  const char* m = "dpTcpClientOpen";
  if (!info[0].IsString() || !info[2].IsString())
    typeError(info.Env(), "dpTcpClientOpen: host and token must be strings");
  const int64_t port = integer(info, 1, m, "port", 1);
  const Geometry g = geometryArgs(info, 3, m);
  ClientEntry e{std::make_unique<TcpClient>(info[0].As<Napi::String>().Utf8Value(), int(port),
                                            info[2].As<Napi::String>().Utf8Value(), g,
                                            integer(info, 10, m, "spinUs") * 1000,
                                            integer(info, 11, m, "timeoutMs") * 1000000,
                                            info.Length() > 12 ? int32Arg(info, 12, m, "peer") : 0),
                Napi::ObjectReference()};
  clients_.push_back(std::move(e));
  return Napi::Number::New(info.Env(), double(clients_.size() - 1));
}

Napi::Value Api::Stop(const Napi::CallbackInfo& info) {
  const int64_t id = integer(info, 0, "dpStop", "worker");
  if (id >= int64_t(workers_.size())) rangeError(info.Env(), "dpStop: no such worker");
  WorkerEntry& e = workers_[size_t(id)];
  if (e.bridge) e.bridge->stop();
  if (e.worker) e.worker->stop();
  e.bridge.reset();
  e.worker.reset();
  e.keep.clear();
  return info.Env().Undefined();
}

Napi::Value Api::WorkerInfo(const Napi::CallbackInfo& info) {
  const int64_t id = integer(info, 0, "dpWorkerInfo", "worker");
  if (id >= int64_t(workers_.size()) || !(workers_[size_t(id)].worker || workers_[size_t(id)].bridge))
    rangeError(info.Env(), "dpWorkerInfo: no such worker");
  const WorkerEntry& e = workers_[size_t(id)];
  return counters(info.Env(), e.bridge ? e.bridge->counters() : e.worker->counters());
}

// dpHostJitter(ms, cpu) → {seconds, gaps, lostSeconds, longestUs, pinned}: how much of `ms` a
// spinning core (cpu −1: any) lost to interrupts, the host and other threads.
Napi::Value Api::HostJitter(const Napi::CallbackInfo& info) {
  const int64_t ms = integer(info, 0, "dpHostJitter", "ms", 1);
  if (ms > 60'000) rangeError(info.Env(), "dpHostJitter: at most 60000 ms");
  const int64_t cpu = integer(info, 1, "dpHostJitter", "cpu", -1);
  if (cpu > 4095) rangeError(info.Env(), "dpHostJitter: cpu out of range");
  const JitterStats j = hostJitter(ms * 1'000'000, int(cpu));
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("seconds", double(j.elapsedNs) * 1e-9);
  o.Set("gaps", double(j.gaps));
  o.Set("lostSeconds", double(j.lostNs) * 1e-9);
  o.Set("longestUs", double(j.longestNs) * 1e-3);
  o.Set("pinned", j.pinned);
  return o;
}

}  // namespace lk::dp

