import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sliceModel } from "../../src/graph/converter.js";
import { buildLlamaGraph } from "../../src/graph/llama-graph.js";
import type { ModelGraph, Op, TensorInfo } from "../../src/graph/ops.js";
import type { ModelConfig } from "../../src/model/config.js";

const base: ModelConfig = {
  architecture: "llama",
  vocabSize: 100,
  hiddenSize: 64,
  intermediateSize: 160,
  numLayers: 3,
  numHeads: 8,
  numKvHeads: 2,
  headDim: 8,
  maxPositionEmbeddings: 128,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  tieWordEmbeddings: false,
  attentionBias: false,
  slidingWindow: null,
  bosTokenId: 1,
  eosTokenIds: [2],
};

describe("automated converter", () => {
  it("cuts a Llama graph into n+1 slices carrying only the residual stream", () => {
    const m = sliceModel(buildLlamaGraph(base));
    assert.equal(m.slices.length, base.numLayers + 1);
    for (let j = 0; j < base.numLayers; j++) {
      const s = m.slices[j]!;
      assert.equal(s.attention?.layer, j);
      assert.deepEqual(s.context, [`h${j}`], `slice ${j} saves the layer input as context`);
    }
    assert.equal(m.slices.at(-1)!.attention, null);
    assert.equal(m.slices.at(-1)!.ops.at(-1)!.out, "logits");
  });

  it("orders q first so it can be sent before k and v exist", () => {
    const m = sliceModel(buildLlamaGraph(base));
    for (const s of m.slices.slice(0, -1)) {
      const qOps = s.ops.slice(0, s.qReadyAfter);
      assert.equal(qOps.at(-1)!.out, s.attention!.q, "the last q-chain op produces q");
      const kvProducers = s.ops.findIndex((o) => o.out === s.attention!.k || o.out === s.attention!.v);
      assert.ok(kvProducers >= s.qReadyAfter, "k and v come after q");
      assert.ok(
        qOps.every((o) => o.kind !== "linear" || !/[kv]_proj/.test(o.weight)),
        "no k/v projection before q is ready",
      );
    }
  });

  it("puts (2 + 2/G)·e·d bytes per token per layer on the wire", () => {
    for (const [heads, kv] of [
      [8, 2],
      [8, 8],
      [8, 1],
    ] as const) {
      const c = { ...base, numHeads: heads, numKvHeads: kv };
      const m = sliceModel(buildLlamaGraph(c));
      const G = heads / kv;
      for (const w of m.wire) assert.equal(w.sendBytes + w.recvBytes, (2 + 2 / G) * 4 * c.hiddenSize);
    }
  });

  it("places a free operator on the side of the cheaper cut", () => {
    // h (8 wide) → wide (64 wide) is needed only after attention: computing it after the cut
    // saves 8 bytes/elt of context instead of 64.
    const tensors = new Map<string, TensorInfo>();
    const t = (name: string, width: number) => {
      tensors.set(name, { name, width, rows: "tokens" });
      return name;
    };
    const ops: Op[] = [
      { kind: "embed", out: t("h", 8), table: "emb" },
      { kind: "linear", out: t("wide", 64), x: "h", weight: "w_wide" },
      { kind: "linear", out: t("q", 8), x: "h", weight: "wq" },
      { kind: "linear", out: t("k", 8), x: "h", weight: "wk" },
      { kind: "linear", out: t("v", 8), x: "h", weight: "wv" },
      { kind: "attention", layer: 0, q: "q", k: "k", v: "v", out: t("a", 8) },
      { kind: "linear", out: t("a2", 64), x: "a", weight: "wo" },
      { kind: "add", out: t("y", 64), a: "a2", b: "wide" },
      { kind: "select_rows", out: t("logits", 64), x: "y" },
    ];
    const graph: ModelGraph = {
      ops,
      tensors,
      output: "logits",
      attention: { numLayers: 1, numHeads: 1, numKvHeads: 1, headDim: 8 },
    };
    const m = sliceModel(graph);
    assert.deepEqual(m.slices[0]!.context, ["h"]);
    assert.ok(
      m.slices[1]!.ops.some((o) => o.out === "wide"),
      "the widening op moved after the cut",
    );
  });
});
