// The converter on the newer families' graphs: the same n + 1 slices cut at the residual stream,
// q sent before k and v, and `lamina convert --explain`'s account of each family's slices.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { explainSlices, sliceModel } from "../../src/graph/converter.js";
import { buildLlamaGraph } from "../../src/graph/llama-graph.js";
import { parseHfConfig } from "../../src/model/hf-config.js";
import { FAMILY_SPECS } from "../helpers/tiny-families.js";

/** Op kinds each family's slices must show. */
const SHOWS: Record<keyof typeof FAMILY_SPECS, string[]> = {
  qwen3: ["rmsnorm, rope"],
  "qwen3-yarn": ["rmsnorm, rope"],
  ernie4_5: ["[embed, rmsnorm, linear, rope, linear×2, rope] → attention L0 (q after 4 ops)"],
  "ernie4_5-moe": ["linear, moe, linear×2, silu_mul, linear, add×2"],
  olmo3: ["(window 6, q after"],
  olmoe: [
    "[embed, rmsnorm, linear, rmsnorm, rope, linear×2, rmsnorm, rope] → attention L0",
    "linear, moe, add",
  ],
  phi3: ["split"],
  "phi3-longrope": ["split×2, silu_mul"],
  "phi4-mini": ["split"],
  mixtral: ["moe"],
  "qwen3-moe": ["moe", "silu_mul"],
  gemma: ["gelu_mul"],
  gemma2: ["gelu_mul, linear, rmsnorm", "(window 6, q after", "linear, softcap"],
  gemma3: ["linear, rmsnorm, rope, linear×2, rmsnorm, rope", "(window 5, q after", "attention L2 (q after"],
  granite: ["linear, scale, add", "linear, scale"],
  olmo2: [
    "[embed, linear, rmsnorm, rope, linear×2, rmsnorm, rope] → attention L0",
    "[linear, rmsnorm, add, linear×2, silu_mul, linear, rmsnorm, add, linear, rmsnorm, rope",
  ],
  smollm3: ["rmsnorm, linear×3] → attention L3", "rope] → attention L2"],
  "gpt-oss": ["(window 6, q after", "linear, moe, add"],
  "gpt-oss-mxfp4": ["(window 6, q after", "linear, moe, add"],
  "qwen2-moe": ["linear, moe, linear×2, silu_mul, linear×2, sigmoid_gate, add×2"],
  glm4: ["linear, rmsnorm, add, rmsnorm, linear, split×2, silu_mul, linear, rmsnorm, add"],
  exaone4: ["rmsnorm, rope, linear×2, rmsnorm, rope] → attention L0"],
  "exaone4-hybrid": ["(window 6, q after", "linear×2, rmsnorm] → attention L3"],
  "seed-oss": ["rope, linear×2, rope] → attention L0"],
  "glm4-moe": ["rmsnorm, rope", "linear, moe, linear×2, silu_mul, linear, add×2"],
};

describe("the converter on each family's graph", () => {
  for (const [family, spec] of Object.entries(FAMILY_SPECS)) {
    it(`${family}: n + 1 slices saving only the residual stream, q first, explained`, () => {
      const c = parseHfConfig(spec.config, `${family}/config.json`);
      const m = sliceModel(buildLlamaGraph(c));
      assert.equal(m.slices.length, c.numLayers + 1);
      for (const s of m.slices.slice(0, -1)) {
        assert.deepEqual(s.context, [`h${s.index}`], `slice ${s.index} saves the residual stream only`);
        const qOps = s.ops.slice(0, s.qReadyAfter).map((o) => o.out);
        assert.ok(
          qOps.includes(s.attention!.q),
          `slice ${s.index}: q is among the first ${s.qReadyAfter} ops`,
        );
        assert.ok(!qOps.includes(s.attention!.v), `slice ${s.index}: v comes after q`);
      }
      const { numHeads: H, numKvHeads: Hkv, headDim: D } = c;
      for (const w of m.wire) assert.equal(w.sendBytes + w.recvBytes, (2 * H + 2 * Hkv) * D * 4);
      const text = explainSlices(m);
      for (const kinds of SHOWS[family as keyof typeof FAMILY_SPECS])
        assert.ok(text.includes(kinds), `${family}: explain shows "${kinds}"\n${text}`);
      assert.match(text, new RegExp(`\\(H \\+ 2·Hkv\\)·D·e \\+ H·D·e = \\(${H} \\+ 2·${Hkv}\\)·${D}·4`));
    });
  }
});
