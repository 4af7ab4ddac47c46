// The sampler's row kernels (engine/sampler.ts): the vocabulary's softmax at a temperature, the
// greedy argmax, and a draw from a row of probabilities. A sampled row of a 128k-token vocabulary
// took 1.8-2.5 ms in JavaScript (an exp, then two more passes, per token); these are vector passes.
// Included by kernels.cpp inside its variant namespace.
#pragma once

// out[i] = softmax(scale * x[i]) over [0, n), scale > 0: the row at temperature 1 / scale. A row of
// -inf (every token banned) gives NaN, as the JavaScript loop does.
inline void rowSoftmax(float* out, const float* x, int64_t n, float scale) {
  const int64_t nv = n / W * W;
  vf mv = splat(-INFINITY);
  int64_t i = 0;
  for (; i < nv; i += W) mv = vmax(loadf(x + i), mv);
  float m = nv ? hmax(mv) : -INFINITY;
  for (; i < n; i++) m = std::max(m, x[i]);
  const vf sc = splat(scale);
  vf sv = splat(0.0f);
  double sum = 0;
  for (i = 0; i < nv; i += W) {
    const vf e = vexp((loadf(x + i) - m) * sc);
    storef(out + i, e);
    sv += e;
  }
  for (; i < n; i++) sum += (out[i] = std::exp((x[i] - m) * scale));
  const float inv = float(1.0 / (sum + hsum(sv)));
  for (i = 0; i < nv; i += W) storef(out + i, loadf(out + i) * inv);
  for (; i < n; i++) out[i] *= inv;
}

// The first index of the largest value of x[0, n), as a scan from x[0] keeping the first value
// greater than the best so far finds it (a NaN never wins; x[0] NaN: 0).
inline int64_t argmax(const float* x, int64_t n) {
  if (n <= 0 || std::isnan(x[0])) return 0;
  const int64_t nv = n / W * W;
  vf mv = splat(-INFINITY);
  int64_t i = 0;
  for (; i < nv; i += W) mv = vmax(loadf(x + i), mv);  // a NaN lane compares false: the best stays
  float m = nv ? hmax(mv) : -INFINITY;
  for (; i < n; i++)
    if (x[i] > m) m = x[i];
  for (i = 0; i < n; i++)
    if (x[i] == m) return i;
  return 0;
}

// Sum of p[b, e) (vector lanes in float, then a double).
inline double blockSum(const float* p, int64_t b, int64_t e) {
  vf s = splat(0.0f);
  int64_t i = b;
  for (; i + W <= e; i += W) s += loadf(p + i);
  double t = hsum(s);
  for (; i < e; i++) t += p[i];
  return t;
}

// With u in [0, 1): the first j whose running sum of p[0..j] exceeds u * sum(p[0, n)), n - 1 if
// none does (rounding). Sums of 64-element blocks find the block, a scalar walk the element.
inline int64_t drawIndex(const float* p, int64_t n, double u) {
  constexpr int64_t B = 64;
  double total = 0;
  for (int64_t b = 0; b < n; b += B) total += blockSum(p, b, std::min(n, b + B));
  const double target = u * total;
  double cum = 0;
  for (int64_t b = 0; b < n; b += B) {
    const int64_t e = std::min(n, b + B);
    const double s = blockSum(p, b, e);
    if (cum + s <= target) {
      cum += s;
      continue;
    }
    for (int64_t j = b; j < e; j++) {
      cum += p[j];
      if (cum > target) return j;
    }
  }
  return n - 1;
}
