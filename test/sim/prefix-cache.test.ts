import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Placement } from "../../src/sim/placement.js";
import { SimPrefixCache } from "../../src/sim/prefix-cache.js";
import type { SimOptions } from "../../src/sim/setup.js";
import { simulate } from "../../src/sim/simulate.js";
import { loadTrace, parseMooncakeJsonl, shapeTrace, type Trace, traceStats } from "../../src/sim/trace.js";
import { catalog, model, network } from "./tiny-catalog.js";

const homogeneous: Placement = { kind: "homogeneous", device: "H100", tp: 1, replicas: 1 };

/**
 * `n` requests a second apart (each prefilled before the next arrives), every prompt 8 blocks of
 * 512 tokens: the first 6 shared by all (a long system prompt), the last 2 their own.
 */
function sharedPrompts(n: number): Trace {
  const lines = Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      timestamp: i * 1000,
      input_length: 8 * 512 - 100,
      output_length: 20,
      hash_ids: [0, 1, 2, 3, 4, 5, 100 + 2 * i, 101 + 2 * i],
    }),
  );
  return parseMooncakeJsonl(lines.join("\n"), "shared");
}

const run = (trace: Trace, extra: Partial<SimOptions> = {}, placement: Placement = homogeneous) =>
  simulate(trace, { model, network, catalog, placement, ...extra });

describe("simulator: prefix caching", () => {
  it("reads Mooncake's hash ids with their rows, keeps them through sorting and cuts, and names bad ones", () => {
    const t = parseMooncakeJsonl(
      '{"timestamp": 2000, "input_length": 600, "output_length": 5, "hash_ids": [7, 8]}\n' +
        '{"timestamp": 0, "input_length": 10, "output_length": 2}\n' +
        '{"timestamp": 1000, "input_length": 30, "output_length": 2, "hash_ids": [9]}\n',
      "k",
    );
    assert.equal(t.prefix!.blockTokens, 512);
    assert.deepEqual([...t.prompt], [10, 30, 600]);
    assert.deepEqual([...t.prefix!.start], [0, 0, 1, 3], "the row without ids has none");
    assert.deepEqual([...t.prefix!.ids], [9, 7, 8]);
    const cut = shapeTrace(t, { kind: "saturate" }, 2);
    assert.deepEqual([...cut.prefix!.start], [0, 0, 1]);
    assert.deepEqual([...cut.prefix!.ids], [9]);
    assert.equal(
      parseMooncakeJsonl('{"timestamp": 0, "input_length": 1, "output_length": 1}', "k").prefix,
      undefined,
    );
    assert.throws(
      () =>
        parseMooncakeJsonl('{"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": [1.5]}', "k"),
      /line 1: hash_ids must be a list of non-negative integers/,
    );
  });

  it("keeps a leading run of blocks, least recently used evicted first", () => {
    const c = new SimPrefixCache(3);
    const ids = Int32Array.from([1, 2, 3, 4]);
    c.insert(ids, 0, 3);
    assert.equal(c.match(ids, 0, 4), 3);
    assert.equal(c.match(Int32Array.from([2, 1]), 0, 2), 2, "a run is any cached leading blocks");
    assert.equal(c.match(Int32Array.from([9, 1]), 0, 2), 0, "a run stops at its first miss");
    c.insert(Int32Array.from([5]), 0, 1); // evicts 3, the least recently used
    assert.equal(c.size, 3);
    assert.equal(c.match(ids, 0, 4), 2);
    assert.equal(new SimPrefixCache(0).match(ids, 0, 4), 0);
  });

  it("prefills only what is not cached: later prompts find the shared blocks, and their first tokens come sooner", () => {
    const trace = sharedPrompts(6);
    const on = run(trace);
    const off = run(trace, { prefixCaching: false });
    // Each of the last 5 prompts finds the 6 shared blocks (their 3,996 tokens leave the last 2 blocks).
    const queried = 6 * (8 * 512 - 100);
    assert.deepEqual(on.prefixCache, {
      queriedTokens: queried,
      hitTokens: 5 * 6 * 512,
      hitShare: (5 * 6 * 512) / queried,
    });
    assert.equal(off.prefixCache, null);
    assert.equal(on.outputTokens, off.outputTokens);
    assert.ok(
      on.ttftMs!.mean < 0.6 * off.ttftMs!.mean,
      `TTFT ${on.ttftMs!.mean} against ${off.ttftMs!.mean}`,
    );
  });

  it("never takes a prompt's last token from the cache", () => {
    // Two equal prompts of exactly 2 blocks: the second computes its last block again.
    const lines = [0, 1000].map((t) =>
      JSON.stringify({ timestamp: t, input_length: 1024, output_length: 3, hash_ids: [1, 2] }),
    );
    const r = run(parseMooncakeJsonl(lines.join("\n"), "exact"));
    assert.equal(r.prefixCache!.hitTokens, 512);
  });

  it("is bounded by the instance's KV pool", () => {
    // TINY's pool holds a few thousand tokens of llama2-7b's KV: fewer than the 6 shared blocks of every
    // prompt and their own, so later prompts find less than the first run did.
    const big = run(sharedPrompts(6));
    const tiny = run(sharedPrompts(6), {}, { kind: "homogeneous", device: "TINY", tp: 1, replicas: 1 });
    assert.ok(tiny.kvCapacityTokens < 8 * 512 * 6, `pool ${tiny.kvCapacityTokens} tokens`);
    assert.ok(tiny.prefixCache!.hitTokens <= big.prefixCache!.hitTokens);
  });

  it("is not modelled where the runtime has none: PD and Adrenaline, decode-only runs", () => {
    const trace = sharedPrompts(3);
    const pd: Placement = {
      kind: "pd",
      prefillDevice: "H100",
      prefillTp: 1,
      prefillInstances: 1,
      decodeDevice: "H100",
      decodeTp: 1,
      decodeInstances: 1,
    };
    assert.equal(run(trace, {}, pd).prefixCache, null);
    assert.equal(run(trace, { decodeOnly: true }).prefixCache, null);
    const lamina: Placement = {
      kind: "lamina",
      modelDevice: "H100",
      attentionDevice: "H20",
      a: 1,
      b: 1,
      microBatches: 2,
    };
    assert.ok(
      run(trace, {}, lamina).prefixCache!.hitTokens > 0,
      "attention workers keep it (as the runtime)",
    );
  });

  it("finds at most what an unbounded cache would on Kimi's conversation trace", () => {
    const t = shapeTrace(loadTrace("kimi-conv"), { kind: "trace", rateScale: 1 }, 2000);
    assert.equal(traceStats(t).requests, 2000);
    // The bound: every block ever computed kept, on one instance.
    const p = t.prefix!;
    const seen = new Set<number>();
    let bound = 0;
    let all = 0;
    for (let i = 0; i < 2000; i++) {
      let run = 0;
      while (p.start[i]! + run < p.start[i + 1]! && seen.has(p.ids[p.start[i]! + run]!)) run++;
      bound += Math.min(run * 512, Math.floor((t.prompt[i]! - 1) / 512) * 512);
      all += t.prompt[i]!;
      for (let j = p.start[i]!; j < p.start[i + 1]!; j++) seen.add(p.ids[j]!);
    }
    const r = run(t, {}, { kind: "homogeneous", device: "H200", tp: 4, replicas: 1 });
    assert.equal(r.prefixCache!.queriedTokens, all);
    assert.ok(
      r.prefixCache!.hitTokens > 0 && r.prefixCache!.hitTokens <= bound,
      `${r.prefixCache!.hitTokens} of ${bound}`,
    );
  });
});
