// Mixture-of-experts routing and the row moves around the experts' grouped products. These are
// memory moves and a few exponentials per token, not arithmetic-bound, so they are plain C++
// shared by every variant (the products themselves run the variant's matmul). Nothing here
// allocates: routing uses slotRow for each slot's expert until rows are assigned, and expertStart
// as its own cursor.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lk {

// One token's experts by score + bias (ERNIE 4.5's and DeepSeek V3's selection bias; no bias: the
// scores alone; ties to the lower index), weighted by the scores alone: over all experts, or
// renormalised over the chosen, times `scale`. A score is the softmax probability over all
// experts, or with `sigmoid` each logit's own sigmoid (DeepSeek V3, GLM-4.5).
inline void moeBiasedChoice(const float* l, const float* bias, int64_t E, int64_t k, bool normalizeTopK,
                            bool sigmoid, float scale, float* weight, int32_t* chosen, int32_t* expertStart) {
  double top = l[0];
  for (int64_t e = 1; e < E; e++) top = std::max(top, double(l[e]));
  double z = 0;
  if (!sigmoid)
    for (int64_t e = 0; e < E; e++) z += std::exp(double(l[e]) - top);
  auto prob = [&](int64_t e) {
    return sigmoid ? 1.0 / (1.0 + std::exp(-double(l[e]))) : std::exp(double(l[e]) - top) / z;
  };
  for (int64_t j = 0; j < k; j++) {
    int64_t best = -1;
    double bestKey = 0;
    for (int64_t e = 0; e < E; e++) {
      bool taken = false;
      for (int64_t i = 0; i < j; i++) taken = taken || chosen[i] == e;
      if (taken) continue;
      const double key = prob(e) + (bias ? double(bias[e]) : 0.0);
      if (best < 0 || key > bestKey) {
        best = e;
        bestKey = key;
      }
    }
    chosen[j] = int32_t(best);
    expertStart[best + 1]++;
  }
  double sum = 0;
  for (int64_t j = 0; j < k; j++) sum += prob(chosen[j]);
  const double norm = normalizeTopK ? sum : 1;
  for (int64_t j = 0; j < k; j++) weight[j] = float(prob(chosen[j]) / norm * scale);
}

// Top-k experts of each token by router logit (ties to the lower index, slots from the largest),
// weights = softmax over all experts, or over the chosen ones when normalizeTopK, times `scale`;
// with a selection bias or sigmoid scores, moeBiasedChoice's choice instead. Then the (token, slot)
// pairs grouped by expert in token order (see MoeRouteArgs in src/kernels/backend.ts).
inline void moeRoute(const float* logits, int64_t nTokens, int64_t nExperts, int64_t topK, bool normalizeTopK,
                     const float* selectionBias, bool sigmoid, float scale, float* slotWeight, int32_t* slotRow,
                     int32_t* rowToken, int32_t* expertStart) {
  const int64_t E = nExperts, k = topK;
  std::memset(expertStart, 0, sizeof(int32_t) * size_t(E + 1));
  for (int64_t t = 0; t < nTokens; t++) {
    const float* l = logits + t * E;
    int32_t* chosen = slotRow + t * k;
    if (selectionBias || sigmoid) {
      moeBiasedChoice(l, selectionBias, E, k, normalizeTopK, sigmoid, scale, slotWeight + t * k, chosen,
                      expertStart);
      continue;
    }
    for (int64_t j = 0; j < k; j++) {
      int64_t best = -1;
      for (int64_t e = 0; e < E; e++) {
        bool taken = false;
        for (int64_t i = 0; i < j; i++) taken = taken || chosen[i] == e;
        if (!taken && (best < 0 || l[e] > l[best])) best = e;  // strict >: a tie keeps the lower index
      }
      chosen[j] = int32_t(best);
      expertStart[best + 1]++;
    }
    const double top = l[chosen[0]];
    double z = 0;
    if (normalizeTopK)
      for (int64_t j = 0; j < k; j++) z += std::exp(double(l[chosen[j]]) - top);
    else
      for (int64_t e = 0; e < E; e++) z += std::exp(double(l[e]) - top);
    for (int64_t j = 0; j < k; j++)
      slotWeight[t * k + j] = float(std::exp(double(l[chosen[j]]) - top) / z * scale);
  }
  for (int64_t e = 0; e < E; e++) expertStart[e + 1] += expertStart[e];
  // expertStart[e] is e's cursor; afterwards it holds e's end, which is e+1's start: shift back.
  for (int64_t s = 0; s < nTokens * k; s++) {
    const int32_t row = expertStart[slotRow[s]]++;
    slotRow[s] = row;
    rowToken[row] = int32_t(s / k);
  }
  for (int64_t e = E; e > 0; e--) expertStart[e] = expertStart[e - 1];
  expertStart[0] = 0;
}

// out rows [r0, r1) = x rows rows[r].
inline void gatherRows(float* out, const float* x, const int32_t* rows, int64_t dim, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) std::memcpy(out + r * dim, x + int64_t(rows[r]) * dim, sizeof(float) * size_t(dim));
}

// Experts [e0, e1): rows [start[e], start[e + 1]) of out (width wide) += bias row e (gpt-oss's
// expert biases, after each grouped product).
inline void expertBias(float* out, const float* bias, const int32_t* start, int64_t width, int64_t e0, int64_t e1) {
  for (int64_t e = e0; e < e1; e++) {
    const float* b = bias + e * width;
    for (int64_t r = start[e]; r < start[e + 1]; r++) {
      float* o = out + r * width;
      for (int64_t i = 0; i < width; i++) o[i] += b[i];
    }
  }
}

// Tokens [t0, t1): out[t] = sum over slots j in order of slotWeight[t, j] * y[slotRow[t, j]].
inline void moeCombine(float* out, const float* y, const int32_t* slotRow, const float* slotWeight, int64_t topK,
                       int64_t dim, int64_t t0, int64_t t1) {
  for (int64_t t = t0; t < t1; t++) {
    float* o = out + t * dim;
    const float* first = y + int64_t(slotRow[t * topK]) * dim;
    const float w0 = slotWeight[t * topK];
    for (int64_t i = 0; i < dim; i++) o[i] = w0 * first[i];
    for (int64_t j = 1; j < topK; j++) {
      const float* row = y + int64_t(slotRow[t * topK + j]) * dim;
      const float w = slotWeight[t * topK + j];
      for (int64_t i = 0; i < dim; i++) o[i] += w * row[i];
    }
  }
}

// The experts of one MoE projection: raw pointers to each expert's [rows, cols] weight.
struct ExpertSet {
  std::vector<const void*> w;
  int dtype;
  int64_t rows;
  int64_t cols;
};

}  // namespace lk
