#include "plane_net_api.h"

#include <stdexcept>
#include <string>

#include "napi_args.h"

namespace lk::pn {

using namespace lk::napi_args;

namespace {

std::string stringArg(const Napi::CallbackInfo& info, size_t i, const char* m, const char* name) {
  if (!info[i].IsString()) typeError(info.Env(), std::string(m) + ": " + name + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

int64_t timeoutArg(const Napi::CallbackInfo& info, size_t i, const char* m) {
  return integer(info, i, m, "timeoutMs", 1) * 1'000'000;
}

}  // namespace

Api::~Api() {
  for (auto& e : nets_) {
    e.net.reset();
    e.segment.SuppressDestruct();
  }
}

void Api::registerFunctions(Napi::Env env, Napi::Object exports) {
  exportMethods<Api>(env, exports, this,
                     {{"pnOpen", &Api::Open},
                      {"pnListen", &Api::Listen},
                      {"pnConnect", &Api::Connect},
                      {"pnSend", &Api::Send},
                      {"pnDrop", &Api::Drop},
                      {"pnOnLoss", &Api::OnLoss},
                      {"pnInfo", &Api::Info},
                      {"pnClose", &Api::Close}});
}

PlaneNet& Api::net(const Napi::CallbackInfo& info) {
  const int64_t id = integer(info, 0, "model plane", "id");
  if (id >= int64_t(nets_.size()) || !nets_[size_t(id)].net)
    rangeError(info.Env(), "model plane: link set " + std::to_string(id) + " is not open");
  return *nets_[size_t(id)].net;
}

// pnOpen(segment, token, self) → id
Napi::Value Api::Open(const Napi::CallbackInfo& info) {
  if (!info[0].IsArrayBuffer()) typeError(info.Env(), "pnOpen: segment must be an ArrayBuffer");
  auto seg = info[0].As<Napi::ArrayBuffer>();
  const std::string token = stringArg(info, 1, "pnOpen", "token");
  const int32_t self = int32Arg(info, 2, "pnOpen", "self");
  Entry e;
  e.net = std::make_unique<PlaneNet>(seg.Data(), int64_t(seg.ByteLength()), token, self);
  e.segment = Napi::Persistent(seg.As<Napi::Object>());
  nets_.push_back(std::move(e));
  return Napi::Number::New(info.Env(), double(nets_.size() - 1));
}

// pnListen(id, host, port = 0) → port
Napi::Value Api::Listen(const Napi::CallbackInfo& info) {
  PlaneNet& n = net(info);
  const int32_t port = present(info, 2) ? int32Arg(info, 2, "pnListen", "port") : 0;
  if (port > 65535) rangeError(info.Env(), "pnListen: port out of range");
  return Napi::Number::New(info.Env(), n.listen(stringArg(info, 1, "pnListen", "host"), port));
}

// pnConnect(id, peer, host, port, timeoutMs)
Napi::Value Api::Connect(const Napi::CallbackInfo& info) {
  PlaneNet& n = net(info);
  const int32_t peer = int32Arg(info, 1, "pnConnect", "peer");
  const std::string host = stringArg(info, 2, "pnConnect", "host");
  const int32_t port = int32Arg(info, 3, "pnConnect", "port", 1);
  if (port > 65535) rangeError(info.Env(), "pnConnect: port out of range");
  n.connect(peer, host, port, timeoutArg(info, 4, "pnConnect"));
  return info.Env().Undefined();
}

// pnSend(id, peer, regions: Int32Array [off, len]…, nRegions, stores: Int32Array [off, val]…, nStores,
//        guardOff, guardVal, ringOff, timeoutMs)
Napi::Value Api::Send(const Napi::CallbackInfo& info) {
  PlaneNet& n = net(info);
  const int32_t peer = int32Arg(info, 1, "pnSend", "peer");
  const int32_t nRegions = int32Arg(info, 3, "pnSend", "nRegions");
  const int32_t nStores = int32Arg(info, 5, "pnSend", "nStores");
  if (nRegions > kMaxRegions || nStores > kMaxStores)
    rangeError(info.Env(), "pnSend: at most 64 regions and 64 stores a frame");
  const auto* regions =
      static_cast<const Region*>(array(info, 2, "pnSend", "regions", napi_int32_array, 2 * int64_t(nRegions)).data);
  const auto* stores =
      static_cast<const Store*>(array(info, 4, "pnSend", "stores", napi_int32_array, 2 * int64_t(nStores)).data);
  const int32_t guardOff = int32Arg(info, 6, "pnSend", "guardOff", -1);
  const int32_t guardVal = int32Arg(info, 7, "pnSend", "guardVal", INT32_MIN);
  const int32_t ringOff = int32Arg(info, 8, "pnSend", "ringOff", -1);
  n.send(peer, regions, nRegions, stores, nStores, guardOff, guardVal, ringOff, timeoutArg(info, 9, "pnSend"));
  return info.Env().Undefined();
}

// pnDrop(id, peer)
Napi::Value Api::Drop(const Napi::CallbackInfo& info) {
  net(info).drop(int32Arg(info, 1, "pnDrop", "peer"));
  return info.Env().Undefined();
}

// pnOnLoss(id, peer, off, val, ringOff)
Napi::Value Api::OnLoss(const Napi::CallbackInfo& info) {
  PlaneNet& n = net(info);
  n.onLoss(int32Arg(info, 1, "pnOnLoss", "peer"), int32Arg(info, 2, "pnOnLoss", "off"),
           int32Arg(info, 3, "pnOnLoss", "val", INT32_MIN), int32Arg(info, 4, "pnOnLoss", "ringOff", -1));
  return info.Env().Undefined();
}

// pnInfo(id) → { framesIn, bytesIn, framesOut, bytesOut, stale, malformed, error, linked }
Napi::Value Api::Info(const Napi::CallbackInfo& info) {
  PlaneNet& n = net(info);
  const Stats s = n.stats();
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("framesIn", double(s.framesIn));
  o.Set("bytesIn", double(s.bytesIn));
  o.Set("framesOut", double(s.framesOut));
  o.Set("bytesOut", double(s.bytesOut));
  o.Set("stale", double(s.stale));
  o.Set("malformed", double(s.malformed));
  o.Set("error", n.error());
  Napi::Array linked = Napi::Array::New(env);
  for (int32_t p = 0, k = 0; p < kMaxPeers; p++)
    if (n.linked(p)) linked.Set(uint32_t(k++), p);
  o.Set("linked", linked);
  return o;
}

// pnClose(id): stops its thread and closes its sockets.
Napi::Value Api::Close(const Napi::CallbackInfo& info) {
  const int64_t id = integer(info, 0, "pnClose", "id");
  if (id < int64_t(nets_.size()) && nets_[size_t(id)].net) {
    nets_[size_t(id)].net.reset();
    nets_[size_t(id)].segment.Reset();
  }
  return info.Env().Undefined();
}

}  // namespace lk::pn
