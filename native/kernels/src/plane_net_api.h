// The Node-API face of the model plane over TCP (pnXxx functions on the kernels addon): JavaScript
// hands this process's copy of the plane segment here and calls send per event; the receiving side
// runs natively. Handles are small integers.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "plane_net.h"

namespace lk::pn {

class Api {
 public:
  ~Api();
  void registerFunctions(Napi::Env env, Napi::Object exports);

 private:
  struct Entry {
    std::unique_ptr<PlaneNet> net;
    Napi::ObjectReference segment;
  };
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value Listen(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Drop(const Napi::CallbackInfo& info);
  Napi::Value OnLoss(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  PlaneNet& net(const Napi::CallbackInfo& info);

  std::vector<Entry> nets_;
};

}  // namespace lk::pn
