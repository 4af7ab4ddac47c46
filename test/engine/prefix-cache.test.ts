import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import type { LocalAttentionService } from "../../src/attention/local-service.js";
import type { GenerateRequest } from "../../src/engine/api.js";
import type { EngineCore } from "../../src/engine/engine-core.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import type { CoreOptions } from "../../src/placement/options.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { remoteAttention } from "../helpers/attention-workers.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const backend = nativeBackend();
const BS = 16;
const tmp = mkdtempSync(path.join(tmpdir(), "lamina-prefix-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const model = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));
const SYSTEM =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her dog Max. One day";
const tails = [
  " she found a big red ball.",
  " it began to rain and they ran home.",
  " Max saw a cat in the tree.",
];

function req(m: LoadedModel, id: string, text: string, maxTokens = 12): GenerateRequest {
  return { id, promptTokenIds: m.tokenizer.encode(text), params: greedy(maxTokens, { ignoreEos: true }) };
}

/**
 * Requests that share a 23-token prompt, one after another: tokens, and logprobs within
 * `tolerance`, against `ref`'s; cached tokens by id.
 */
async function windowWaves(
  core: EngineCore,
  ref: EngineCore,
  tolerance: number,
): Promise<Map<string, number>> {
  const prompt = Array.from({ length: 23 }, (_, i) => 3 + ((i * 7) % 50));
  const cached = new Map<string, number>();
  for (const [id, extra] of [
    ["p", []],
    ["q", [9, 9]],
    ["r", [9, 9, 4, 4, 4, 4, 4]],
  ] as const) {
    const ask = {
      id,
      promptTokenIds: [...prompt, ...extra],
      params: greedy(16, { ignoreEos: true, logprobs: 0 }),
    };
    const want = (await runToCompletion(ref, [ask])).get(id)!;
    const got = (await runToCompletion(core, [ask])).get(id)!;
    assert.equal(got.error, undefined, `${id}: ${got.error}`);
    assert.deepEqual(got.tokens, want.tokens, id);
    const drift = Math.max(...got.logprobs.map((l, i) => Math.abs(l.logprob - want.logprobs[i]!.logprob)));
    assert.ok(drift <= tolerance, `${id}: logprobs ${drift} from a full computation's`);
    cached.set(id, got.events[0]!.cachedTokens!);
  }
  return cached;
}

/** A wave's request, or one made from the tokens earlier waves produced. */
type WaveRequest = GenerateRequest | ((replies: Map<string, number[]>) => GenerateRequest);

/** Runs waves of requests one after another on one engine; each wave's requests run together. */
async function waves(core: EngineCore, ws: readonly WaveRequest[][]) {
  const tokens = new Map<string, number[]>();
  const cached = new Map<string, number>();
  const prompts = new Map<string, number>();
  for (const w of ws) {
    const reqs = w.map((r) => (typeof r === "function" ? r(tokens) : r));
    for (const r of reqs) prompts.set(r.id, r.promptTokenIds.length);
    const res = await runToCompletion(core, reqs);
    for (const [id, c] of res) {
      assert.equal(c.error, undefined, `${id}: ${c.error}`);
      tokens.set(id, c.tokens);
      cached.set(id, c.events[0]!.cachedTokens ?? -1);
    }
  }
  return { tokens, cached, prompts };
}

const workload = (m: LoadedModel): WaveRequest[][] => [
  [req(m, "a", SYSTEM + tails[0])],
  // The same prompt again, and two that share the system prompt: all find it cached.
  [req(m, "a2", SYSTEM + tails[0]), req(m, "b", SYSTEM + tails[1]), req(m, "c", SYSTEM + tails[2])],
  // A chat's next turn: b's prompt, its reply and a new message.
  [
    (replies) => ({
      ...req(m, "d", ""),
      promptTokenIds: [
        ...m.tokenizer.encode(SYSTEM + tails[1]),
        ...replies.get("b")!,
        ...m.tokenizer.encode(" Lily laughed and said"),
      ],
    }),
  ],
];

const off = (o: CoreOptions = {}) =>
  buildColocatedEngine(model, backend, { blockSize: BS, prefixCaching: false, ...o });
const expected = await waves(off(), workload(model));

describe("prefix caching", () => {
  it("reuses whole cached blocks of a shared prefix and gives the tokens a full computation gives", async () => {
    const core = buildColocatedEngine(model, backend, { blockSize: BS });
    const got = await waves(core, workload(model));
    assert.deepEqual(got.tokens, expected.tokens);
    const len = (id: string) => got.prompts.get(id)!;
    const shared = Math.floor(model.tokenizer.encode(SYSTEM).length / BS) * BS;
    assert.equal(got.cached.get("a"), 0, "nothing cached before the first request");
    assert.equal(
      got.cached.get("a2"),
      Math.floor((len("a2") - 1) / BS) * BS,
      "all but the last block's tail",
    );
    for (const id of ["b", "c"])
      assert.ok(got.cached.get(id)! >= shared - BS, `${id} shares the system prompt`);
    // b computed its prompt and all but its last output token: the blocks those filled are cached.
    assert.equal(got.cached.get("d"), Math.floor((len("b") + 11) / BS) * BS, "the next turn finds b's reply");
    const s = core.stats();
    assert.equal(s.prefixCache.enabled, true);
    assert.equal(
      s.prefixCache.hitTokens,
      [...got.cached.values()].reduce((x, y) => x + y, 0),
    );
    assert.ok(s.prefixCache.cachedBlocks > 0);
    assert.ok(
      s.kv.every((k) => k.usedBlocks === 0),
      "cached blocks no request holds count as free",
    );
  });

  it("requests that arrive together with one prompt compute it once: the others wait for its blocks", async () => {
    const prompt = model.tokenizer.encode(SYSTEM + tails[0]);
    const reqs = ["x", "y", "z"].map((id) => ({
      id,
      promptTokenIds: prompt,
      params: greedy(8, { ignoreEos: true, temperature: 0 }),
    }));
    const want = await runToCompletion(off(), reqs);
    // A step budget of 16 tokens: the first request's prefill takes several steps.
    const core = buildColocatedEngine(model, backend, { blockSize: BS, maxTokensPerStep: 16 });
    const got = await runToCompletion(core, reqs);
    const whole = Math.floor((prompt.length - 1) / BS) * BS;
    assert.deepEqual(
      [...got.values()].map((c) => c.events[0]!.cachedTokens),
      [0, whole, whole],
    );
    assert.deepEqual(
      [...got.values()].map((c) => c.tokens),
      [...want.values()].map((c) => c.tokens),
    );
  });

  it("is off with prefixCaching: false (nothing reported cached)", async () => {
    assert.ok([...expected.cached.values()].every((c) => c === 0));
    assert.equal(off().stats().prefixCache.enabled, false);
  });

  it("evicts cached blocks under memory pressure and preempts as before, with the same tokens", async () => {
    // 14 blocks of 16: the three concurrent requests of wave 2 do not fit with their output, so
    // cached blocks are evicted and requests preempted.
    const o = { kvBlocks: 14, maxRunning: 3 };
    const ref = await waves(off(o), workload(model));
    const core = buildColocatedEngine(model, backend, { blockSize: BS, ...o });
    const got = await waves(core, workload(model));
    assert.deepEqual(got.tokens, ref.tokens);
    assert.deepEqual(ref.tokens, expected.tokens);
    assert.equal(core.stats().kv[0]!.usedBlocks, 0);
  });

  for (const family of ["gemma2", "gemma3", "gpt-oss"] as const) {
    it(`caches a model whose window layers keep a pool of their own (${family}), with the same tokens`, async () => {
      const m = await loadModel(writeTinyModel(path.join(tmp, family), family).dir);
      const ref = buildColocatedEngine(m, backend, { blockSize: 4, prefixCaching: false });
      // Steps of 8 tokens: the window pool frees a prompt's early blocks while it is computed.
      const core = buildColocatedEngine(m, backend, { blockSize: 4, maxTokensPerStep: 8 });
      const local = core.attention as LocalAttentionService;
      assert.notEqual(local.kv.windowAllocator, null, "the window layers have a pool of their own");
      // A cached prefix's tokens were computed in other steps than a full computation's: f32 models
      // agree to rounding; Gemma 2's bf16 products round their activations to bf16, which turns
      // that into about 1e-3 in a logprob (as in window-kv.test.ts).
      const got = await windowWaves(core, ref, family === "gemma2" ? 1e-2 : 1e-5);
      assert.ok(got.get("q")! >= 20 && got.get("r")! >= 20, "the later prompts found the first one cached");
      assert.equal(local.kv.windowAllocator!.usedBlocks, 0, "every window block let go");
      assert.ok(local.kv.windowAllocator!.cachedBlocks > 0, "window blocks kept for reuse");
    });
  }

  it("keeps a window pool's cache right under memory pressure: requests together, evictions and preemptions (gpt-oss)", async () => {
    const m = await loadModel(writeTinyModel(path.join(tmp, "gpt-oss-pressure"), "gpt-oss").dir);
    const prompt = Array.from({ length: 23 }, (_, i) => 3 + ((i * 7) % 50));
    const asks = (wave: number) =>
      Array.from({ length: 4 }, (_, i) => ({
        id: `w${wave}-${i}`,
        promptTokenIds: [...prompt, ...Array.from({ length: 1 + ((i + wave) % 5) }, (_, j) => 9 + j + i)],
        params: greedy(24, { ignoreEos: true, logprobs: 0 }),
      }));
    // 20 global blocks of 4 tokens: four requests of about 50 tokens each do not fit at once.
    const o = { blockSize: 4, kvBlocks: 20, maxRunning: 4, maxTokensPerStep: 8 };
    const ref = buildColocatedEngine(m, backend, { ...o, prefixCaching: false });
    const core = buildColocatedEngine(m, backend, o);
    let hits = 0;
    for (let wave = 0; wave < 3; wave++) {
      const want = await runToCompletion(ref, asks(wave));
      const got = await runToCompletion(core, asks(wave));
      for (const [id, c] of got) {
        assert.equal(c.error, undefined, `${id}: ${c.error}`);
        assert.deepEqual(c.tokens, want.get(id)!.tokens, id);
        const drift = Math.max(
          ...c.logprobs.map((l, i) => Math.abs(l.logprob - want.get(id)!.logprobs[i]!.logprob)),
        );
        assert.ok(drift <= 1e-5, `${id}: logprobs ${drift} from a full computation's`);
        hits += c.events[0]!.cachedTokens!;
      }
    }
    const local = core.attention as LocalAttentionService;
    assert.ok(hits > 0, "prompts found cached blocks");
    assert.ok(core.stats().preemptions > 0, "a request was preempted");
    assert.ok(
      local.kv.allocator.evictions > 0 && local.kv.windowAllocator!.evictions > 0,
      "both pools evicted",
    );
    assert.equal(
      local.kv.allocator.usedBlocks + local.kv.windowAllocator!.usedBlocks,
      0,
      "every block let go",
    );
  });

  it("caches a model whose every layer has the window (Phi-3: one pool, the window masked), with the same tokens", async () => {
    const m = await loadModel(writeTinyModel(path.join(tmp, "phi3"), "phi3").dir);
    assert.equal(m.config.slidingWindow, 10);
    const prompt = Array.from({ length: 23 }, (_, i) => 3 + ((i * 7) % 50));
    const ask = (id: string, extra: number[] = []) => ({
      id,
      promptTokenIds: [...prompt, ...extra],
      params: greedy(16, { ignoreEos: true }),
    });
    const ref = buildColocatedEngine(m, backend, { blockSize: 4, prefixCaching: false });
    const core = buildColocatedEngine(m, backend, { blockSize: 4 });
    assert.notEqual(core.attention.prefix, null);
    for (const [id, extra] of [
      ["p", []],
      ["q", [9, 9]],
      ["r", [9, 9, 4, 4, 4, 4, 4]],
    ] as const) {
      const want = (await runToCompletion(ref, [ask(id, [...extra])])).get(id)!;
      const got = (await runToCompletion(core, [ask(id, [...extra])])).get(id)!;
      assert.deepEqual(got.tokens, want.tokens, id);
      if (id !== "p") assert.ok(got.events[0]!.cachedTokens! >= 20, `${id} found the prompt cached`);
    }
  });

  for (const p of [
    { family: "gpt-oss", workers: 1, partition: "head", depth: 2, transport: "shm" },
    { family: "gpt-oss", workers: 2, partition: "request", depth: 1, transport: "tcp" },
    { family: "gemma2", workers: 2, partition: "head", depth: 2, transport: "tcp", dataPlane: false },
  ] as const) {
    const plane = "dataPlane" in p ? "messages" : "data plane";
    it(`caches a window pool's blocks on attention workers (${p.family}; ${p.workers}, ${p.partition}, depth ${p.depth}, ${p.transport}, ${plane}), with the same tokens`, async () => {
      const m = await loadModel(writeTinyModel(path.join(tmp, `${p.family}-remote`), p.family).dir);
      const ref = buildColocatedEngine(m, backend, { blockSize: 4, prefixCaching: false });
      const o = { blockSize: 4, maxTokensPerStep: 8 };
      const { service, workers } = await remoteAttention(m, backend, { ...p, ...o });
      try {
        const core = buildColocatedEngine(m, backend, { ...o, pipelineDepth: p.depth }, service);
        const got = await windowWaves(core, ref, p.family === "gemma2" ? 1e-2 : 1e-5);
        assert.ok(got.get("q")! >= 20 && got.get("r")! >= 20, "the later prompts found the first one cached");
        const stats = (await service.workerStats()).map((s) => s!);
        for (const s of stats) assert.equal(s.usedBlocks + s.windowUsedBlocks, 0, "every block let go");
        assert.ok(
          stats.some((s) => s.windowCachedBlocks > 0),
          "the workers kept window blocks as the mirror told them",
        );
      } finally {
        await service.close();
        for (const w of workers) await w.close();
      }
    });
  }

  for (const p of [
    { workers: 1, partition: "head", depth: 2, transport: "shm" },
    { workers: 2, partition: "head", depth: 1, transport: "tcp" },
    { workers: 2, partition: "request", depth: 2, transport: "shm" },
    // Over messages each worker attends through its own block tables: they must be the mirror's.
    { workers: 2, partition: "head", depth: 2, transport: "tcp", dataPlane: false },
  ] as const) {
    const plane = "dataPlane" in p ? "messages" : "data plane";
    it(`on attention workers (${p.workers}, ${p.partition}, depth ${p.depth}, ${p.transport}, ${plane}): the same tokens, and every worker's accounting the mirror's`, async () => {
      const { service, workers } = await remoteAttention(model, backend, { ...p, blockSize: BS });
      try {
        assert.equal(service.drive === null, plane === "messages");
        const core = buildColocatedEngine(model, backend, { blockSize: BS, pipelineDepth: p.depth }, service);
        const got = await waves(core, workload(model));
        assert.deepEqual(got.tokens, expected.tokens);
        assert.ok(got.cached.get("a2")! > 0 && got.cached.get("d")! > 0, "hits on the workers too");
        // While a request that started on cached blocks runs, each worker holds what its mirror says.
        core.add(req(model, "e", SYSTEM + tails[2], 40));
        while ((await core.runStep()).length === 0) {}
        const live = await service.workerStats();
        assert.ok(service.usage().some((u) => u.usedBlocks > 0));
        assert.deepEqual(
          live.map((s) => s!.usedBlocks),
          service.usage().map((u) => u.usedBlocks),
        );
        while (core.hasWork) await core.runStep();
        const stats = await service.workerStats();
        const cached = stats.map((s) => s!.cachedBlocks);
        assert.ok(service.prefix!.cachedBlocks() > 0);
        if (p.partition === "head") for (const c of cached) assert.equal(c, service.prefix!.cachedBlocks());
        else
          assert.equal(
            cached.reduce((x, y) => x + y, 0),
            service.prefix!.cachedBlocks(),
          );
        for (const s of stats) assert.equal(s!.usedBlocks, 0);
      } finally {
        await service.close();
        for (const w of workers) await w.close();
      }
    });
  }
});
