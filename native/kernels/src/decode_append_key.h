// A decode token's own key folded into its attention over the keys cached before it: the
// attention worker's late pass for a step of decode tokens (dataplane_worker.cpp), where each
// token's late range is the one key it has just written. One online-softmax step per query head
// (its score, the weights of the two parts by their lse, the new value row blended in) gives what
// the decode kernel over that single key and a merge would give, without the kernel's per-call
// setup (queries reordered, scratch cleared, a step gathered, padding lanes, outputs normalised)
// or the merge's pass over every row: on the AMX Xeon the two took 4.4 µs for one token of 32
// heads of 128, and the stories260K model's batch of 16 paid about 9 µs a layer, all on the model
// side's wait. Every KV dtype (an int8 cache's rows dequantized once a KV head). Included by
// kernels.cpp inside its variant namespace, after decode_attention.h.
#pragma once

// One query head's fold, row r of a.out and a.lse: its score against the new key (kAt(i): W
// elements of the key's row from element i, k1(i): one), then the value row blended in (vAt, v1).
template <class KAt, class K1, class VAt, class V1>
inline void foldKey(const AttnArgs& a, int64_t r, bool roundQ, KAt kAt, K1 k1, VAt vAt, V1 v1) {
  const int64_t D = a.cache.headDim, dv = D / W * W;
  const float* q = a.q + r * D;
  vf acc = splat(0.0f);
  for (int64_t i = 0; i < dv; i += W) {
    vf qv = loadf(q + i);
    if (roundQ) qv = (vf)(bf16Bits(qv) << 16);
    acc += qv * kAt(i);
  }
  float s = hsum(acc);
  for (int64_t i = dv; i < D; i++) s += q[i] * k1(i);
  s *= a.scale;
  if (a.softcap > 0) s = a.softcap * std::tanh(s / a.softcap);  // Gemma 2, as softcapScores
  float* o = a.out + r * D;
  const float l = a.lse[r];
  if (l == -INFINITY) {  // no keys before it: the new key's value is the whole output
    for (int64_t i = 0; i < dv; i += W) storef(o + i, vAt(i));
    for (int64_t i = dv; i < D; i++) o[i] = v1(i);
    a.lse[r] = s;
    return;
  }
  const float m = std::max(l, s);
  const float wo = std::exp(l - m), wn = std::exp(s - m), z = wo + wn;
  const vf co = splat(wo / z), cn = splat(wn / z);
  for (int64_t i = 0; i < dv; i += W) storef(o + i, loadf(o + i) * co + vAt(i) * cn);
  for (int64_t i = dv; i < D; i++) o[i] = o[i] * (wo / z) + v1(i) * (wn / z);
  a.lse[r] = m + std::log(z);
}

// Each token's new key at cache slot slots[t], for every KV head: headRows(t, kh, row) folds the
// head's query heads, row being the key's row in the block-major layout (block, KV head, offset).
template <class HeadRows>
inline void forEachNewKey(const AttnArgs& a, const int32_t* slots, int64_t t0, int64_t t1, HeadRows headRows) {
  const int64_t nKv = a.cache.nKvHeads, bs = a.cache.blockSize;
  for (int64_t t = t0; t < t1; t++) {
    const int64_t slot = slots[t];
    if (slot < 0) continue;  // a padding token: nothing was written, nothing to add
    for (int64_t kh = 0; kh < nKv; kh++) headRows(t, kh, (slot / bs * nKv + kh) * bs + slot % bs);
  }
}

// A float cache (DT 0 f32, 1 f16, 2 bf16): the key and value rows read as stored.
template <int DT>
void appendKeyRows(const AttnArgs& a, const int32_t* slots, int64_t t0, int64_t t1) {
  const KvArgs& c = a.cache;
  const int64_t D = c.headDim, G = a.nHeads / c.nKvHeads;
  // Where the decode kernel multiplies a bf16 cache's keys by the queries rounded to bf16
  // (vdpbf16ps, see attentionPart), the new key's score is taken from the rounded query too.
  const bool roundQ = kBf16DotAttention && DT == 2 && D % 32 == 0 && G >= 2;
  forEachNewKey(a, slots, t0, t1, [&](int64_t t, int64_t kh, int64_t keyRow) {
    const int64_t row = keyRow * D;  // the key's (and value's) first element
    for (int64_t h = kh * G; h < (kh + 1) * G; h++)
      foldKey(
          a, t * a.nHeads + h, roundQ, [&](int64_t i) { return loadw<DT>(c.k, row + i); },
          [&](int64_t i) { return loadw1<DT>(c.k, row + i); }, [&](int64_t i) { return loadw<DT>(c.v, row + i); },
          [&](int64_t i) { return loadw1<DT>(c.v, row + i); });
  });
}

// An int8 cache (kv_int8.h's layout): each KV head's key and value rows dequantized once (codes
// times the row's scale) for its query heads. The score is taken from the unquantized query, where
// the decode kernels with byte products round it to 8 bits.
inline void appendKeyRowsI8(const AttnArgs& a, const int32_t* slots, int64_t t0, int64_t t1) {
  const KvArgs& c = a.cache;
  const int64_t D = c.headDim, G = a.nHeads / c.nKvHeads;
  thread_local lk::LineVector<float> rows;
  if (int64_t(rows.size()) < 2 * D) rows.resize(size_t(2 * D));
  float* kf = rows.data();
  float* vf_ = rows.data() + D;
  const int8_t* k8 = static_cast<const int8_t*>(c.k);
  const int8_t* v8 = static_cast<const int8_t*>(c.v);
  forEachNewKey(a, slots, t0, t1, [&](int64_t t, int64_t kh, int64_t row) {
    const int64_t lane = row % lk::kI8Group, group = (row - lane) * D;
    const float ks = c.kScale[row], vs = c.vScale[row];
    for (int64_t d = 0; d < D; d++) {
      kf[d] = float(k8[group + i8::keyAt(D, lane, d)]) * ks;
      vf_[d] = float(v8[group + d * lk::kI8Group + lane]) * vs;
    }
    for (int64_t h = kh * G; h < (kh + 1) * G; h++)
      foldKey(
          a, t * a.nHeads + h, false, [&](int64_t i) { return loadf(kf + i); }, [&](int64_t i) { return kf[i]; },
          [&](int64_t i) { return loadf(vf_ + i); }, [&](int64_t i) { return vf_[i]; });
  });
}

// Tokens [t0, t1) of a.q, each with its own new key at cache slot slots[t], folded into a.out and
// a.lse (their attention over the keys before them). Dtypes as attentionWith takes them.
void appendKey(const AttnArgs& a, const int32_t* slots, int64_t t0, int64_t t1) {
  if (a.cache.dtype == lk::kI8) appendKeyRowsI8(a, slots, t0, t1);
  else if (a.cache.dtype == lk::kF32) appendKeyRows<0>(a, slots, t0, t1);
  else if (a.cache.dtype == lk::kF16) appendKeyRows<1>(a, slots, t0, t1);
  else appendKeyRows<2>(a, slots, t0, t1);
}
