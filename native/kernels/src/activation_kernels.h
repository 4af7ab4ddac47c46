// Element-wise activations with a transcendental per element (SiLU, GELU's tanh form, soft-capping,
// gpt-oss's clamped SwiGLU), compiled per variant on the vector layer: one std::tanh or std::exp
// an element took 10-20 ns, so at a Gemma FFN's width these, not the memory they pass over, set
// their time. Every element goes through the vector code, the last partial vector through a padded
// copy, so an element's result does not depend on where a thread's range starts. Included by
// kernels.cpp inside its variant namespace.

// f over [i0, i1) of W-wide vectors: f(i, n) handles the n <= W elements from i (n < W only for the
// last, through a padded copy).
template <class F>
inline void eachVector(int64_t i0, int64_t i1, F&& f) {
  int64_t i = i0;
  for (; i + W <= i1; i += W) f(i, int64_t(W));
  if (i < i1) f(i, i1 - i);
}

// Loads n <= W floats from p (the rest 0), and stores the first n lanes of v to p: a whole vector
// directly, a partial one through a padded copy.
inline vf loadN(const float* p, int64_t n) {
  if (n == W) return loadf(p);
  alignas(64) float t[W] = {};
  std::memcpy(t, p, size_t(n) * 4);
  return loadf(t);
}
inline void storeN(float* p, vf v, int64_t n) {
  if (n == W) return storef(p, v);
  alignas(64) float t[W];
  storef(t, v);
  std::memcpy(p, t, size_t(n) * 4);
}

// out[i] = silu(g[i]) * u[i] = g / (1 + e^-g) * u.
void siluMul(float* out, const float* g, const float* u, int64_t i0, int64_t i1) {
  eachVector(i0, i1, [&](int64_t i, int64_t n) {
    const vf x = loadN(g + i, n);
    storeN(out + i, x / (1.0f + vexp(-x)) * loadN(u + i, n), n);
  });
}

// out[i] = gelu_tanh(g[i]) * u[i]: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the form
// transformers calls gelu_pytorch_tanh. out may alias g.
void geluMul(float* out, const float* g, const float* u, int64_t i0, int64_t i1) {
  constexpr float kC = 0.7978845608028654f;  // sqrt(2 / pi)
  eachVector(i0, i1, [&](int64_t i, int64_t n) {
    const vf x = loadN(g + i, n);
    const vf t = vtanh(kC * (x + 0.044715f * x * x * x));
    storeN(out + i, 0.5f * x * (1.0f + t) * loadN(u + i, n), n);
  });
}

// out[i] = cap * tanh(x[i] / cap); out may alias x.
void softcap(float* out, const float* x, float cap, int64_t i0, int64_t i1) {
  const float inv = 1.0f / cap;
  eachVector(i0, i1, [&](int64_t i, int64_t n) { storeN(out + i, cap * vtanh(loadN(x + i, n) * inv), n); });
}

// gpt-oss's clamped SwiGLU: g = min(g[i], limit), u = clamp(u[i], -limit, limit),
// out[i] = (u + 1) * g * sigmoid(alpha * g). out may alias g.
void swigluClamped(float* out, const float* g, const float* u, float alpha, float limit, int64_t i0, int64_t i1) {
  eachVector(i0, i1, [&](int64_t i, int64_t n) {
    vf x = loadN(g + i, n);
    x = x < limit ? x : splat(limit);
    vf y = loadN(u + i, n);
    y = y < limit ? y : splat(limit);
    y = y > -limit ? y : splat(-limit);
    storeN(out + i, (y + 1.0f) * x / (1.0f + vexp(-alpha * x)), n);
  });
}
