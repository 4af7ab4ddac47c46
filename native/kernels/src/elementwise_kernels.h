// Element-wise kernels with at most one transcendental a row (Qwen2-MoE's sigmoid gate) or none
// (scaling by a constant): one pass over memory each and bound by it, so they are plain C++ shared
// by every variant, split into row ranges by the addon's pool like the others. The activations
// with one per element are per variant, in activation_kernels.h.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace lk {

// Rows [r0, r1) of width w: out[r, :] = sigmoid(gate[r]) * x[r, :] (Qwen2-MoE's shared-expert gate,
// one logit a row). out may alias x.
inline void sigmoidGate(float* out, const float* x, const float* gate, int64_t w, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float s = 1.0f / (1.0f + std::exp(-gate[r]));
    for (int64_t i = 0; i < w; i++) out[r * w + i] = s * x[r * w + i];
  }
}

// out[i] = x[i] * factor; out may alias x.
inline void scale(float* out, const float* x, float factor, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; i++) out[i] = x[i] * factor;
}

}  // namespace lk
