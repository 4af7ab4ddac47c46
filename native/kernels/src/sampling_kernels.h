// The sampler's row kernels (engine/sampler.ts; its softmax at a temperature is kernels.cpp's
// softmax with a scale): the greedy argmax, top-k, top-p's candidates and a draw from a row of
// probabilities. A sampled row of a 128k-token vocabulary
// took 1.8-2.5 ms in JavaScript (an exp, then two more passes, per token); these are vector passes.
// Included by kernels.cpp inside its variant namespace.
#pragma once

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

// Whether any lane of v is above t (a NaN lane is not).
inline bool anyAbove(vf v, float t) {
  const vi c = v > splat(t);
  int any = 0;
  for (int l = 0; l < W; l++) any |= c[l];
  return any != 0;
}

// The k largest of x[0, n) (1 <= k <= n), ties to the lower index, their indices in idx[0, k) in a
// min-heap's order. Whole vectors none of whose lanes beats the heap's least are skipped: past the
// first few thousand tokens of a row, nearly all of them.
inline int64_t topK(const float* x, int64_t n, int64_t k, int32_t* idx) {
  // "a ranks below b": a smaller value, or an equal one at a higher index.
  const auto below = [x](int32_t a, int32_t b) { return x[a] < x[b] || (x[a] == x[b] && a > b); };
  const auto heapOrder = [&](int32_t a, int32_t b) { return below(b, a); };  // the least on top
  for (int64_t i = 0; i < k; i++) idx[i] = int32_t(i);
  std::make_heap(idx, idx + k, heapOrder);
  const auto offer = [&](int64_t t) {
    if (!below(idx[0], int32_t(t))) return;
    std::pop_heap(idx, idx + k, heapOrder);
    idx[k - 1] = int32_t(t);
    std::push_heap(idx, idx + k, heapOrder);
  };
  int64_t t = k;
  for (; t < n && t % W != 0; t++) offer(t);
  for (; t + W <= n; t += W) {
    if (!anyAbove(loadf(x + t), x[idx[0]])) continue;
    for (int64_t l = 0; l < W; l++) offer(t + l);
  }
  for (; t < n; t++) offer(t);
  return k;
}

// top-p's candidates in p[0, n) (probabilities, >= 0): the indices whose probability's bucket (its
// float bits >> 20: exponent and 3 mantissa bits) is at least the one where the mass summed from
// the top bucket down reaches topP, and one bucket lower for the rounding of those sums; every
// index where it never does. Into idx[0, m) in index order; returns m. The nucleus itself, the
// most likely of these by a sort, is the caller's. Where the tokens within 2^-24 of the most
// likely one already hold topP (a peaked row: a few hundred of 128k), the nucleus lies among them
// and only they are counted: whole vectors below that floor are skipped.
inline int64_t nucleusCandidates(const float* p, int64_t n, double topP, int32_t* idx) {
  constexpr int kShift = 20, kBuckets = 1 << (31 - kShift);
  const int64_t nv = n / W * W;
  vf mv = splat(0.0f);
  for (int64_t i = 0; i < nv; i += W) mv = vmax(loadf(p + i), mv);
  float pmax = nv ? hmax(mv) : 0.0f;
  for (int64_t i = nv; i < n; i++) pmax = std::max(pmax, p[i]);
  const float fl = pmax * 0x1p-24f;
  double head = 0;  // the mass at or above the floor, a vector's float sum at a time
  for (int64_t i = 0; i < nv; i += W) {
    const vf v = loadf(p + i);
    head += hsum(v >= fl ? v : splat(0.0f));
  }
  for (int64_t i = nv; i < n; i++)
    if (p[i] >= fl) head += p[i];
  const float floor = head >= topP * (1 + 1e-6) ? fl : 0.0f;
  // Four histograms, so consecutive tokens in one bucket do not wait on each other's sums.
  static thread_local double mass[4][kBuckets];
  for (auto& h : mass) std::fill(h, h + kBuckets, 0.0);
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(p);
  const auto add = [&](int h, int64_t j) {
    const uint32_t b = bits[j] >> kShift;
    if (p[j] >= floor && b < uint32_t(kBuckets)) mass[h][b] += p[j];
  };
  const auto live = [&](int64_t j) { return floor == 0.0f || j >= nv || anyAbove(loadf(p + j), floor * 0x1p-1f); };
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    if (j % W == 0 && !live(j)) {
      j += W - 4;
      continue;
    }
    add(0, j);
    add(1, j + 1);
    add(2, j + 2);
    add(3, j + 3);
  }
  for (; j < n; j++) add(0, j);
  int cut = kBuckets - 1;
  double held = 0;
  while (cut > 0 && held < topP) {
    held += mass[0][cut] + mass[1][cut] + mass[2][cut] + mass[3][cut];
    cut--;
  }
  const uint32_t from = held < topP ? 0 : uint32_t(cut);
  int64_t m = 0;
  for (j = 0; j < n; j++) {
    if (j % W == 0 && j + W <= n && !live(j)) {
      j += W - 1;
      continue;
    }
    if (p[j] >= floor && (bits[j] >> kShift) >= from) idx[m++] = int32_t(j);
  }
  return m;
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
// none does (rounding). Sums of 64-element blocks, taken once, find the block; a scalar walk the
// element.
inline int64_t drawIndex(const float* p, int64_t n, double u) {
  constexpr int64_t B = 64;
  static thread_local std::vector<double> sums;
  sums.resize(size_t((n + B - 1) / B));
  double total = 0;
  for (int64_t b = 0; b < n; b += B) total += (sums[size_t(b / B)] = blockSum(p, b, std::min(n, b + B)));
  const double target = u * total;
  double cum = 0;
  for (int64_t b = 0; b < n; b += B) {
    const double s = sums[size_t(b / B)];
    if (cum + s <= target) {
      cum += s;
      continue;
    }
    for (int64_t j = b, e = std::min(n, b + B); j < e; j++) {
      cum += p[j];
      if (cum > target) return j;
    }
  }
  return n - 1;
}
