// A decode token's own key folded into its attention over the keys cached before it: the
// attention worker's late pass for a step of decode tokens (dataplane_worker.cpp), where each
// token's late range is the one key it has just written. One online-softmax step per query head
// (its score, the weights of the two parts by their lse, the new value row blended in) gives what
// the decode kernel over that single key and a merge would give, without the kernel's per-call
// setup (queries reordered, scratch cleared, a step gathered, padding lanes, outputs normalised)
// or the merge's pass over every row: on the AMX Xeon the two took 4.4 µs for one token of 32
// heads of 128, and the stories260K model's batch of 16 paid about 9 µs a layer, all on the model
// side's wait. Float caches (f32, f16, bf16); an int8 cache takes the general path. Included by
// kernels.cpp inside its variant namespace, after decode_attention.h.
#pragma once

template <int DT>
void appendKeyRows(const AttnArgs& a, const int32_t* slots, int64_t t0, int64_t t1) {
  const KvArgs& c = a.cache;
  const int64_t D = c.headDim, nKv = c.nKvHeads, G = a.nHeads / nKv, bs = c.blockSize, dv = D / W * W;
  // Where the decode kernel multiplies a bf16 cache's keys by the queries rounded to bf16
  // (vdpbf16ps, see attentionPart), the new key's score is taken from the rounded query too.
  const bool roundQ = kBf16DotAttention && DT == 2 && D % 32 == 0 && G >= 2;
  for (int64_t t = t0; t < t1; t++) {
    const int64_t slot = slots[t];
    if (slot < 0) continue;  // a padding token: nothing was written, nothing to add
    const int64_t block = slot / bs, off = slot % bs;
    for (int64_t kh = 0; kh < nKv; kh++) {
      const int64_t row = ((block * nKv + kh) * bs + off) * D;  // the key's (and value's) first element
      for (int64_t h = kh * G; h < (kh + 1) * G; h++) {
        const int64_t r = t * a.nHeads + h;
        const float* q = a.q + r * D;
        vf acc = splat(0.0f);
        for (int64_t i = 0; i < dv; i += W) {
          vf qv = loadf(q + i);
          if (roundQ) qv = (vf)(bf16Bits(qv) << 16);
          acc += qv * loadw<DT>(c.k, row + i);
        }
        float s = hsum(acc);
        for (int64_t i = dv; i < D; i++) s += q[i] * loadw1<DT>(c.k, row + i);
        s *= a.scale;
        if (a.softcap > 0) s = a.softcap * std::tanh(s / a.softcap);  // Gemma 2, as softcapScores
        float* o = a.out + r * D;
        const float l = a.lse[r];
        if (l == -INFINITY) {  // no keys before it: the new key's value is the whole output
          for (int64_t i = 0; i < dv; i += W) storef(o + i, loadw<DT>(c.v, row + i));
          for (int64_t i = dv; i < D; i++) o[i] = loadw1<DT>(c.v, row + i);
          a.lse[r] = s;
          continue;
        }
        const float m = std::max(l, s);
        const float wo = std::exp(l - m), wn = std::exp(s - m), z = wo + wn;
        const vf co = splat(wo / z), cn = splat(wn / z);
        for (int64_t i = 0; i < dv; i += W) storef(o + i, loadf(o + i) * co + loadw<DT>(c.v, row + i) * cn);
        for (int64_t i = dv; i < D; i++) o[i] = o[i] * (wo / z) + loadw1<DT>(c.v, row + i) * (wn / z);
        a.lse[r] = m + std::log(z);
      }
    }
  }
}

// Tokens [t0, t1) of a.q, each with its own new key at cache slot slots[t], folded into a.out and
// a.lse (their attention over the keys before them); false, with nothing done, for an int8 cache.
bool appendKey(const AttnArgs& a, const int32_t* slots, int64_t t0, int64_t t1) {
  switch (a.cache.dtype) {
    case lk::kF32:
      appendKeyRows<0>(a, slots, t0, t1);
      return true;
    case lk::kF16:
      appendKeyRows<1>(a, slots, t0, t1);
      return true;
    case lk::kBF16:
      appendKeyRows<2>(a, slots, t0, t1);
      return true;
    default:
      return false;
  }
}
