// Argument checks shared by the kernels' Node-API functions: each throws a TypeError or
// RangeError naming the method and the argument, so a bad call from JavaScript is an exception
// and never a read out of bounds.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>

namespace lk::napi_args {

struct Span {
  void* data = nullptr;
  size_t length = 0;
};

[[noreturn]] inline void typeError(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
[[noreturn]] inline void rangeError(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

inline const char* typeName(napi_typedarray_type t) {
  switch (t) {
    case napi_float32_array:
      return "Float32Array";
    case napi_uint16_array:
      return "Uint16Array";
    case napi_int32_array:
      return "Int32Array";
    default:
      return "typed array";
  }
}

// A typed array of the expected element type with at least `need` elements.
inline Span array(const Napi::CallbackInfo& info, size_t i, const char* method, const char* name,
           napi_typedarray_type want, int64_t need) {
  Napi::Env env = info.Env();
  const Napi::Value v = info[i];
  Span s;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (!v.IsTypedArray() ||
      napi_get_typedarray_info(env, v, &type, &s.length, &s.data, &ab, &offset) != napi_ok || type != want)
    typeError(env, std::string(method) + ": " + name + " must be a " + typeName(want));
  if (need < 0 || int64_t(s.length) < need)
    typeError(env, std::string(method) + ": " + name + " has " + std::to_string(s.length) +
                       " elements, needs at least " + std::to_string(need));
  return s;
}

inline bool present(const Napi::CallbackInfo& info, size_t i) { return !info[i].IsUndefined() && !info[i].IsNull(); }

inline int64_t integer(const Napi::CallbackInfo& info, size_t i, const char* method, const char* name, int64_t min = 0) {
  const Napi::Value v = info[i];
  if (!v.IsNumber()) typeError(info.Env(), std::string(method) + ": " + name + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d == std::floor(d)) || d < double(min) || d > 9.0e15)
    typeError(info.Env(), std::string(method) + ": " + name + " must be an integer >= " + std::to_string(min) +
                              ", got " + std::to_string(d));
  return int64_t(d);
}

inline double number(const Napi::CallbackInfo& info, size_t i, const char* method, const char* name) {
  if (!info[i].IsNumber()) typeError(info.Env(), std::string(method) + ": " + name + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

inline int32_t int32Arg(const Napi::CallbackInfo& info, size_t i, const char* method, const char* name,
                        int64_t min = 0) {
  const int64_t v = integer(info, i, method, name, min);
  if (v > INT32_MAX) rangeError(info.Env(), std::string(method) + ": " + name + " is too large");
  return int32_t(v);
}

// Runs `body`, turning the native code's own exceptions into JavaScript errors (a range_error into
// a RangeError), so no C++ exception crosses into Node.
template <class F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::range_error& e) {
    throw Napi::RangeError::New(info.Env(), e.what());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

// Exports member functions of `api` under their names, each bound to it and guarded.
template <class Api>
void exportMethods(Napi::Env env, Napi::Object exports, Api* api,
                   std::initializer_list<std::pair<const char*, Napi::Value (Api::*)(const Napi::CallbackInfo&)>> methods) {
  using Method = Napi::Value (Api::*)(const Napi::CallbackInfo&);
  for (const auto& [name, method] : methods) {
    // The member pointer travels as the function's data, next to the Api.
    auto* bound = new std::pair<Api*, Method>(api, method);
    exports.Set(name, Napi::Function::New(
                          env,
                          [](const Napi::CallbackInfo& info) -> Napi::Value {
                            auto* b = static_cast<std::pair<Api*, Method>*>(info.Data());
                            return guarded(info, [&] { return (b->first->*(b->second))(info); });
                          },
                          name, bound));
    env.AddCleanupHook([bound] { delete bound; });
  }
}

}  // namespace lk::napi_args
