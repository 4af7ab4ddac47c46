// Element-wise kernels Gemma's graph adds: GeGLU with the tanh-approximated GELU, soft-capping
// (cap * tanh(x / cap)) and scaling by a constant. They are one pass over memory each and bound by
// it, not by arithmetic, so they are plain C++ shared by every variant, split into row ranges by
// the addon's pool like the others.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace lk {

// out[i] = gelu_tanh(g[i]) * u[i] for i in [i0, i1): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
// the form transformers calls gelu_pytorch_tanh. out may alias g.
inline void geluMul(float* out, const float* g, const float* u, int64_t i0, int64_t i1) {
  constexpr float kC = 0.7978845608028654f;  // sqrt(2 / pi)
  for (int64_t i = i0; i < i1; i++) {
    const float x = g[i];
    out[i] = 0.5f * x * (1.0f + std::tanh(kC * (x + 0.044715f * x * x * x))) * u[i];
  }
}

// gpt-oss's clamped SwiGLU for i in [i0, i1): g = min(g[i], limit), u = clamp(u[i], -limit, limit),
// out[i] = (u + 1) * g * sigmoid(alpha * g). out may alias g.
inline void swigluClamped(float* out, const float* g, const float* u, float alpha, float limit, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; i++) {
    const float x = std::min(g[i], limit);
    const float y = std::min(std::max(u[i], -limit), limit);
    out[i] = (y + 1.0f) * x / (1.0f + std::exp(-alpha * x));
  }
}

// Rows [r0, r1) of width w: out[r, :] = sigmoid(gate[r]) * x[r, :] (Qwen2-MoE's shared-expert gate,
// one logit a row). out may alias x.
inline void sigmoidGate(float* out, const float* x, const float* gate, int64_t w, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float s = 1.0f / (1.0f + std::exp(-gate[r]));
    for (int64_t i = 0; i < w; i++) out[r * w + i] = s * x[r * w + i];
  }
}

// out[i] = cap * tanh(x[i] / cap); out may alias x.
inline void softcap(float* out, const float* x, float cap, int64_t i0, int64_t i1) {
  const float inv = 1.0f / cap;
  for (int64_t i = i0; i < i1; i++) out[i] = cap * std::tanh(x[i] * inv);
}

// out[i] = x[i] * factor; out may alias x.
inline void scale(float* out, const float* x, float factor, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; i++) out[i] = x[i] * factor;
}

}  // namespace lk
