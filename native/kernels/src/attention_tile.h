// Prompt attention in tiles of query tokens: what the two tile kernels share. Included by
// kernels.cpp inside its variant namespace, before attention_tile_dot.h and attention_tile_fma.h.
//
// Decode attention reads each key once per query token, which is all a decode token can do. A
// prompt chunk's tokens read the same keys: one token at a time, each chunk re-reads the whole
// context per token and its arithmetic runs as small per-token products (about a quarter of the
// GEMMs' rate). A tile takes a run of consecutive tokens of one sequence and one KV head: its rows
// are the tokens' query heads (up to kTileRows), and each step of kTileKeys keys is two small
// matrix products, every key and value row loaded once for all of the tile's rows, with the rows
// in vector lanes so the online softmax runs down whole vectors of rows.
//
// A row's result depends only on its own query and keys: steps start at multiples of kTileKeys
// positions, keys outside a row's range get probability 0 exactly, and every lane sums in the same
// order whichever tile it sits in. So a token gives the same output whatever chunk or tile it came
// in (the prefix cache and chunked prefill rely on that).

constexpr int64_t kTileKeys = 64;

// A key or value row of zeros (wide enough for f32 rows): the slots of a step outside the tile's
// range read it (their probability is 0, and 0 times a stale row could be NaN).
alignas(64) inline const float kZeroRow[lk::kTileMaxHeadDim] = {};

// Row pointers of a step's nk slots at positions k0 + j of KV head kh: the cache's rows within the
// tile's keys [lo, hi), kZeroRow elsewhere (a block table entry there may be stale).
template <class T>
inline void tileStepRows(const T* kc, const T* vc, const int32_t* table, int64_t k0, int64_t nk, int64_t lo,
                         int64_t hi, int64_t bs, int64_t nKv, int64_t kh, int64_t D, const T** krow,
                         const T** vrow) {
  for (int64_t j = 0; j < nk; j++) {
    const int64_t p = k0 + j;
    if (p < lo || p >= hi) {
      krow[j] = vrow[j] = reinterpret_cast<const T*>(kZeroRow);
      continue;
    }
    const int64_t row = ((int64_t(table[p / bs]) * nKv + kh) * bs + p % bs) * D;
    krow[j] = kc + row;
    vrow[j] = vc + row;
  }
}

// Per-row state of a tile: running max and denominator, the step's rescale, each row's key range.
struct TileRowState {
  alignas(64) float m[lk::kTileRows], l[lk::kTileRows], corr[lk::kTileRows];
  alignas(64) int32_t start[lk::kTileRows], end[lk::kTileRows];
};

// Rows [0, R) of tokens [t0, t1) against KV head kh: row r is token t0 + r / G's query head
// kh * G + r % G for r < rows = (t1 - t0) * G; padding rows (up to R) repeat the last real row's
// query and range, so they never force masking, and are not written out. Sets each row's range and
// softmax state, calls put(r, q) with each row's query (fp32, head_dim values), and returns the
// union of the ranges as [lo, hi).
template <class PutQuery>
inline void tileInitRows(const AttnArgs& a, int64_t t0, int64_t kh, int64_t rows, int64_t R, TileRowState& st,
                         int32_t& lo, int32_t& hi, PutQuery&& put) {
  const int64_t G = a.nHeads / a.cache.nKvHeads, D = a.cache.headDim;
  lo = INT32_MAX;
  hi = 0;
  for (int64_t r = 0; r < R; r++) {
    const int64_t rr = std::min(r, rows - 1), tok = t0 + rr / G, head = kh * G + rr % G;
    put(r, a.q + (tok * a.nHeads + head) * D);
    st.start[r] = a.ctxStart[tok];
    st.end[r] = a.ctxEnd[tok];
    lo = std::min(lo, st.start[r]);
    hi = std::max(hi, st.end[r]);
    st.m[r] = -INFINITY;
    st.l[r] = 0.0f;
  }
}

// The tile's outputs: row r's numerator o[r * D ...] over its denominator into its token's query
// head, and its log-sum-exp where the call wants it (-inf for a row with no keys).
inline void tileWriteRows(const AttnArgs& a, int64_t t0, int64_t kh, int64_t rows, const float* o,
                          const TileRowState& st) {
  const int64_t G = a.nHeads / a.cache.nKvHeads, D = a.cache.headDim;
  for (int64_t r = 0; r < rows; r++) {
    const int64_t tok = t0 + r / G, head = kh * G + r % G;
    const float l = st.l[r];
    const vf inv = splat(l > 0 ? 1.0f / l : 0.0f);
    float* out = a.out + (tok * a.nHeads + head) * D;
    for (int64_t d = 0; d < D; d += W) storef(out + d, loadf(o + r * D + d) * inv);
    if (a.lse) a.lse[tok * a.nHeads + head] = l > 0 ? st.m[r] + std::log(l) : -INFINITY;
  }
}

// The step's masks: whether rows [r0, r0 + W) all hold every slot of a step [k0, k0 + nk) (then
// none needs masking).
inline bool tileRowsInside(const TileRowState& st, int64_t r0, int64_t k0, int64_t nk) {
  for (int i = 0; i < W; i++)
    if (st.start[r0 + i] > k0 || st.end[r0 + i] < k0 + nk) return false;
  return true;
}

// A step's scores (all R rows of nk slots, s[j][r]) soft-capped where the model caps them (Gemma 2),
// scaled as the per-token kernel's are; returns the scale the softmax still has to apply (1 once
// capped, else the call's).
inline float tileCapScores(const AttnArgs& a, float* s, int64_t R, int64_t nk) {
  if (a.softcap <= 0) return a.scale;
  softcapScores(s, nk * R, a.softcap, a.scale);
  return 1.0f;
}
