import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import type { GenerateRequest, SamplingParams } from "../../src/engine/api.js";
import type { EngineCore } from "../../src/engine/engine-core.js";
import { MIN_NGRAM, proposeDrafts } from "../../src/engine/ngram-drafts.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { Sequence } from "../../src/engine/sequence.js";
import { Speculation } from "../../src/engine/speculative.js";
import { loadModel } from "../../src/model/load.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import type { CoreOptions } from "../../src/placement/options.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { remoteAttention } from "../helpers/attention-workers.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const backend = nativeBackend();
const tmp = mkdtempSync(path.join(tmpdir(), "lamina-spec-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

// Every top-level await comes before the first test: the file's after hook (removing tmp) runs
// once the tests declared so far have ended.
const history = (tokens: number[]) => ({ length: tokens.length, tokenAt: (i: number) => tokens[i]! });

const model = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));
const PROMPTS = [
  "Once upon a time, there was a little girl named Lily. Lily",
  "Tom had a red ball. Tom liked his red ball. One day",
  "The cat saw a bird. The bird saw the cat.",
];

function requests(params: (i: number) => SamplingParams): GenerateRequest[] {
  return PROMPTS.map((p, i) => ({
    id: `r${i}`,
    promptTokenIds: model.tokenizer.encode(p),
    params: params(i),
  }));
}

async function generate(core: EngineCore, reqs: GenerateRequest[]) {
  const res = await runToCompletion(core, reqs);
  for (const [id, c] of res) assert.equal(c.error, undefined, `${id}: ${c.error}`);
  return res;
}

/**
 * Text that first occurs in a reply ending at a token a step reported with a later one (not its
 * last), given each token's text and the tokens each event reported; null if there is none.
 */
function stopInsideEvent(pieces: string[], eventSizes: number[]): string | null {
  const full = pieces.join("");
  let at = 0;
  for (const size of eventSizes) {
    for (let j = at; j < at + size - 1; j++) {
      const end = pieces.slice(0, j + 1).join("").length;
      for (let len = 4; len <= Math.min(24, end); len++) {
        const stop = full.slice(end - len, end);
        if (full.indexOf(stop) === end - len) return stop;
      }
    }
    at += size;
  }
  return null;
}

const off = (o: CoreOptions = {}) => buildColocatedEngine(model, backend, { speculativeTokens: 0, ...o });
const GREEDY = requests(() => greedy(80, { ignoreEos: true }));
const expected = await generate(off(), GREEDY);
const tokensOf = (res: Map<string, { tokens: number[] }>) => [...res.values()].map((c) => c.tokens);

describe("prompt lookup drafts", () => {
  it("proposes what followed the latest earlier occurrence of the last tokens, longest match first", () => {
    const out: number[] = [];
    // "7 8" occurs at 0 (followed by 1 2) and at 4 (followed by 3 4 5): the latest one wins.
    assert.equal(proposeDrafts(history([7, 8, 1, 2, 7, 8, 3, 4, 5, 9, 7, 8]), 3, out), 3);
    assert.deepEqual(out, [3, 4, 5]);
    // The 3-gram "9 7 8" occurs once, followed by 1: preferred over the later 2-gram's "5".
    proposeDrafts(history([9, 7, 8, 1, 6, 7, 8, 5, 9, 7, 8]), 2, out);
    assert.deepEqual(out, [1, 6]);
    // A proposal never runs past the history's end (it may run into the suffix itself)...
    assert.equal(proposeDrafts(history([1, 2, 3, 1, 2]), 8, out), 3);
    assert.deepEqual(out, [3, 1, 2]);
    // ...and the limit caps it.
    assert.equal(proposeDrafts(history([1, 2, 3, 1, 2]), 1, out), 1);
    assert.deepEqual(out, [3]);
  });

  it("proposes nothing without an earlier match of at least MIN_NGRAM tokens, or with no room", () => {
    const out = [99];
    assert.equal(MIN_NGRAM, 2);
    assert.equal(proposeDrafts(history([5, 1, 2, 3, 5]), 4, out), 0, "one repeated token is not enough");
    assert.deepEqual(out, [], "the output is cleared");
    assert.equal(proposeDrafts(history([1, 2, 1, 2]), 0, out), 0);
    assert.equal(proposeDrafts(history([4]), 3, out), 0);
  });

  it("does not draft a structured reply or strict tool calls, and stays within max_tokens", () => {
    const spec = new Speculation({ tokens: 4, maxRunning: 4 }, 1000);
    const prompt = [1, 2, 3, 4, 5, 6, 1, 2];
    const seq = (p: Partial<SamplingParams>) =>
      new Sequence(1, "r", prompt, { ...resolveSamplingParams({ maxTokens: 16 }), ...p });
    assert.equal(spec.draft(seq({}), 8, 1), 4);
    assert.equal(spec.draft(seq({ responseFormat: "json_object" }), 8, 1), 0);
    // Any strict tool calls (their fields do not matter here).
    const tools = {} as NonNullable<SamplingParams["toolCalls"]>;
    assert.equal(spec.draft(seq({ toolCalls: tools }), 8, 1), 0);
    assert.equal(spec.draft(seq({ maxTokens: 3 }), 8, 1), 2, "2 kept and the token after: 3");
    const nearEnd = new Speculation({ tokens: 4, maxRunning: 4 }, prompt.length + 2);
    assert.equal(nearEnd.draft(seq({}), 8, 1), 1, "the context's end");
    assert.equal(spec.draft(seq({}), 8, 5), 0, "more sequences running than maxRunning");
    const s = seq({});
    spec.verified(s, 4, 0);
    assert.equal(spec.draft(s, 8, 1), 1, "after a draft that missed, one token");
    spec.verified(s, 1, 1);
    assert.equal(spec.draft(s, 8, 1), 2, "then one more for each it keeps");
    // Misses in a row pause its drafts: 0, then 1, 3, 7, 15 steps (at most 16 in all).
    const pauses: number[] = [];
    for (let miss = 0; miss < 6; miss++) {
      spec.verified(s, 1, 0);
      let waited = 0;
      while (spec.draft(s, 8, 1) === 0) waited++;
      pauses.push(waited);
    }
    assert.deepEqual(pauses, [0, 1, 3, 7, 15, 15]);
    spec.verified(s, 1, 1);
    assert.equal(spec.draft(s, 8, 1), 2, "a kept token ends the pause");
  });
});

describe("speculative decoding by prompt lookup", () => {
  it("gives the tokens decoding one a step gives, in fewer steps, drafts drawn and kept", async () => {
    const core = buildColocatedEngine(model, backend, { speculativeTokens: 3 });
    const got = await generate(core, GREEDY);
    assert.deepEqual(tokensOf(got), tokensOf(expected));
    const s = core.stats();
    assert.equal(s.speculation.enabled, true);
    assert.ok(s.speculation.acceptedTokens > 20, `kept ${s.speculation.acceptedTokens} draft tokens`);
    assert.ok(s.speculation.acceptedTokens < s.speculation.draftTokens, "and refused some");
    assert.equal(s.generationTokens, 3 * 80, "every token counted once");
    // A step reports a sequence's tokens in one event: one a step, and the drafts it kept.
    const events = [...got.values()].reduce((n, c) => n + c.events.length, 0);
    assert.equal(events, 3 * 80 - s.speculation.acceptedTokens);
    assert.equal(s.kv[0]!.usedBlocks, 0, "every block given back");
  });

  it("draws the same tokens under a seed at temperature 1 (a draft is kept when the row's own draw equals it)", async () => {
    const sampled = requests((i) =>
      resolveSamplingParams({ temperature: 1, seed: 11 + i, maxTokens: 60, ignoreEos: true }),
    );
    const want = await generate(off(), sampled);
    const core = buildColocatedEngine(model, backend, { speculativeTokens: 4 });
    const got = await generate(core, sampled);
    assert.deepEqual(tokensOf(got), tokensOf(want));
    assert.ok(core.stats().speculation.acceptedTokens > 0);
  });

  it("stops where decoding one a step stops: a stop token inside a kept draft, max_tokens, logprobs a token", async () => {
    // A token the replies repeat ends them at its first occurrence, wherever a draft put it.
    const stopAt = expected.get("r0")!.tokens[30]!;
    const reqs = requests(() => greedy(50, { stopTokenIds: [stopAt], logprobs: 2 }));
    const want = await generate(off(), reqs);
    const core = buildColocatedEngine(model, backend, { speculativeTokens: 4 });
    const got = await generate(core, reqs);
    assert.ok(core.stats().speculation.acceptedTokens > 0);
    for (const [id, w] of want) {
      const g = got.get(id)!;
      assert.deepEqual(g.tokens, w.tokens, id);
      assert.equal(g.finishReason, w.finishReason, id);
      assert.equal(g.text, w.text, id);
      assert.equal(g.logprobs.length, g.tokens.length, `${id}: a logprob a token`);
      for (let i = 0; i < w.logprobs.length; i++) {
        assert.equal(g.logprobs[i]!.tokenId, w.logprobs[i]!.tokenId);
        assert.ok(Math.abs(g.logprobs[i]!.logprob - w.logprobs[i]!.logprob) < 1e-4, `${id} logprob ${i}`);
      }
      assert.equal(g.events.at(-1)!.completionTokens, g.tokens.length);
    }
  });

  it("ends at a stop string where one token a step ends: the tokens kept after it are dropped", async () => {
    // Where a speculative step reported several tokens at once, a stop string that ends at its
    // middle token (first occurring there): one token a step stops at that token.
    const spec = await generate(buildColocatedEngine(model, backend, { speculativeTokens: 4 }), GREEDY);
    const reqs: GenerateRequest[] = [];
    for (const r of GREEDY) {
      const pieces = expected.get(r.id)!.events.map((e) => e.text); // one token an event
      const stop = stopInsideEvent(
        pieces,
        spec.get(r.id)!.events.map((e) => e.tokenIds.length),
      );
      if (stop !== null) reqs.push({ ...r, params: greedy(80, { ignoreEos: true, stop: [stop] }) });
    }
    assert.ok(reqs.length >= 1, "a reply with a stop string inside a speculative step");
    const want = await generate(off(), reqs);
    const core = buildColocatedEngine(model, backend, { speculativeTokens: 4 });
    const got = await generate(core, reqs);
    for (const [id, w] of want) {
      const g = got.get(id)!;
      assert.equal(w.finishReason, "stop", `${id} stopped`);
      assert.deepEqual(g.tokens, w.tokens, id);
      assert.equal(g.text, w.text, id);
      assert.equal(g.events.at(-1)!.completionTokens, w.tokens.length, `${id}: usage counts kept tokens`);
    }
    assert.equal(
      core.stats().generationTokens,
      [...want.values()].reduce((n, w) => n + w.tokens.length, 0),
      "the dropped tokens are not counted as generated",
    );
  });

  it("publishes only kept tokens' blocks to the prefix cache: the next turn finds them and continues alike", async () => {
    const core = buildColocatedEngine(model, backend, { speculativeTokens: 3, blockSize: 16 });
    const first = (await generate(core, GREEDY)).get("r1")!;
    const turn = {
      id: "next",
      promptTokenIds: [...GREEDY[1]!.promptTokenIds, ...first.tokens],
      params: greedy(24, { ignoreEos: true }),
    };
    const want = (await generate(off({ prefixCaching: false }), [turn])).get("next")!;
    const got = (await generate(core, [turn])).get("next")!;
    assert.deepEqual(got.tokens, want.tokens);
    assert.ok(got.events[0]!.cachedTokens! >= 64, `${got.events[0]!.cachedTokens} tokens cached`);
  });

  it("is off with speculativeTokens 0, and while more sequences run than speculativeMaxRunning", async () => {
    const none = off();
    await generate(none, GREEDY);
    assert.deepEqual(none.stats().speculation, {
      enabled: false,
      draftTokens: 0,
      acceptedTokens: 0,
      draftSteps: 0,
    });
    const busy = buildColocatedEngine(model, backend, { speculativeTokens: 3, speculativeMaxRunning: 2 });
    assert.deepEqual(tokensOf(await generate(busy, GREEDY)), tokensOf(expected));
    assert.equal(busy.stats().speculation.draftTokens, 0, "3 sequences ran together throughout");
  });

  for (const variant of ["gemma2", "gemma3", "gpt-oss", "phi3"] as const)
    it(`${variant}'s sliding window (its own pool, or one pool masked): the same tokens past the window`, async () => {
      const m = await loadModel(writeTinyModel(path.join(tmp, variant), variant).dir);
      const w = m.config.slidingWindow;
      assert.ok(w !== null && w < 40, "a window the replies pass");
      const prompt = Array.from({ length: 23 }, (_, i) => 3 + ((i * 7) % 5));
      const ask = [1, 2].map((i) => ({
        id: `p${i}`,
        promptTokenIds: prompt.slice(i),
        params: greedy(60, { ignoreEos: true }),
      }));
      // A step of at most 8 tokens: the window pool keeps little more than the window.
      const o = { blockSize: 4, maxTokensPerStep: 8, maxRunning: 2 };
      const want = await generate(buildColocatedEngine(m, backend, { ...o, speculativeTokens: 0 }), ask);
      const core = buildColocatedEngine(m, backend, { ...o, speculativeTokens: 3 });
      assert.deepEqual(tokensOf(await generate(core, ask)), tokensOf(want));
      const s = core.stats().speculation;
      // Drafts kept and refused (Gemma 3's and gpt-oss's replies have both): each refusal writes the
      // window pool's positions again.
      assert.ok(s.draftTokens > 0, `${variant} was drafted`);
      if (variant !== "gemma3") return;
      // On an attention worker, whose window pool the model side's mirror follows: the same tokens
      // as that placement without drafts.
      const onWorker = async (speculativeTokens: number) => {
        const p = { workers: 1, partition: "head", depth: 1, transport: "shm", ...o } as const;
        const { service, workers } = await remoteAttention(m, backend, p);
        try {
          const opts = { ...o, speculativeTokens, pipelineDepth: 1 };
          const remote = buildColocatedEngine(m, backend, opts, service);
          return {
            tokens: tokensOf(await generate(remote, ask)),
            kept: remote.stats().speculation.acceptedTokens,
          };
        } finally {
          await service.close();
          for (const wk of workers) await wk.close();
        }
      };
      const plain = await onWorker(0);
      const drafted = await onWorker(3);
      assert.deepEqual(drafted.tokens, plain.tokens);
      assert.ok(drafted.kept > 0);
    });

  for (const p of [
    { workers: 1, partition: "head", depth: 2, transport: "shm" },
    { workers: 2, partition: "request", depth: 1, transport: "tcp" },
    { workers: 2, partition: "head", depth: 2, transport: "tcp", dataPlane: false },
  ] as const) {
    const plane = "dataPlane" in p ? "messages" : "data plane";
    it(`on attention workers (${p.workers}, ${p.partition}, depth ${p.depth}, ${p.transport}, ${plane}): the same tokens`, async () => {
      const { service, workers } = await remoteAttention(model, backend, p);
      try {
        const core = buildColocatedEngine(
          model,
          backend,
          { pipelineDepth: p.depth, speculativeTokens: 3 },
          service,
        );
        assert.deepEqual(tokensOf(await generate(core, GREEDY)), tokensOf(expected));
        assert.ok(core.stats().speculation.acceptedTokens > 20);
        assert.ok(service.usage().every((u) => u.usedBlocks === 0));
      } finally {
        await service.close();
        for (const w of workers) await w.close();
      }
    });
  }
});
