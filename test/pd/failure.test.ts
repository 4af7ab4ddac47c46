import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import type { GenerateRequest } from "../../src/engine/api.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine, buildPdEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "../helpers/backends.js";
import { type Completion, greedy, runToCompletion } from "../helpers/engine-driver.js";

const backend = nativeBackend();
const modelDir = path.join(sharedDataPath("models", "stories260K"), "hf");

const PROMPTS = [
  "Once upon a time",
  "The little dog",
  "Lily and Ben went to the park and",
  "One day, a girl named Sue",
  "Tom had a red",
  "The sun was",
  "Mom said",
  "A big fish",
];

function requests(model: LoadedModel): GenerateRequest[] {
  return PROMPTS.map((p, i) => ({
    id: `r${i}`,
    promptTokenIds: model.tokenizer.encode(p),
    params: greedy(40, { ignoreEos: true }),
  }));
}

// Few running at once, so some requests still wait for prefill when the instance dies.
const SIZES: EngineOptions = { maxTokensPerStep: 32, maxRunning: 4, blockSize: 8, model: modelDir };

describe("a prefill instance killed mid-generation (SIGKILL)", async () => {
  const model = await loadModel(modelDir);
  const expected = [
    ...(await runToCompletion(buildColocatedEngine(model, backend, SIZES), requests(model))).values(),
  ];

  for (const c of [
    { name: "pd: waiting requests are prefilled on the decode instance", mode: "pd", instances: 1 },
    {
      name: "adrenaline, 1 instance: offloaded requests are rebuilt on the decode instance",
      mode: "adrenaline",
      instances: 1,
    },
    { name: "adrenaline, 2 instances: the other instance takes over", mode: "adrenaline", instances: 2 },
  ] as const) {
    it(c.name, async () => {
      const { core, attention } = await buildPdEngine(model, backend, {
        ...SIZES,
        mode: c.mode,
        ...(c.mode === "adrenaline" ? { offloadRatio: 1 } : {}),
        prefillInstances: c.instances,
        prefillThreads: 1,
      });
      try {
        const out = new Map<string, Completion>();
        for (const r of requests(model)) {
          core.add(r);
          out.set(r.id, { tokens: [], text: "", finishReason: undefined, logprobs: [], events: [] });
        }
        let steps = 0;
        let killed = false;
        let victim = -1;
        while (core.hasWork) {
          assert.ok(++steps < 10_000, "the engine finishes");
          if (!killed && steps === 12) {
            const offloaded = attention.offloadStats().offloaded;
            assert.ok(c.mode === "pd" || offloaded > 0, "requests are offloaded when the instance dies");
            assert.ok(core.scheduler.waiting.length > 0, "requests wait for prefill when the instance dies");
            victim =
              c.mode === "pd"
                ? 0
                : attention.instances.findIndex((x) => (x.remote.usage()[0]?.usedBlocks ?? 0) > 0);
            assert.ok(victim >= 0, "some instance holds offloaded KV");
            const pid = attention.instances[victim]!.link.pid();
            assert.ok(pid, "the prefill instance is a process");
            process.kill(pid, "SIGKILL");
            killed = true;
          }
          for (const ev of await core.runStep()) {
            const o = out.get(ev.requestId)!;
            o.tokens.push(...ev.tokenIds);
            if (ev.finished) o.finishReason = ev.finishReason;
            if (ev.error) o.error = ev.error;
          }
        }
        assert.ok(killed);
        if (c.mode === "adrenaline")
          assert.ok(core.recoveries > 0, "the engine rebuilt what the instance held");
        assert.deepEqual(
          [...out.values()].map((o) => [o.tokens, o.finishReason, o.error]),
          expected.map((e) => [e.tokens, "length", undefined]),
        );
        assert.equal(attention.instances[victim]!.link.alive, false);
        for (const u of attention.usage()) assert.equal(u.usedBlocks, 0, `no KV block left on ${u.worker}`);
        if (c.instances === 2) {
          const survivor = attention.instances[1 - victim]!;
          const [w] = await survivor.remote.workerStats();
          assert.equal(w?.usedBlocks, 0, "the surviving executor agrees");
          assert.ok(survivor.link.prefills > 0, "the survivor prefilled");
        }
        assert.ok(attention.description.includes(`${c.instances - 1} prefill instance`));
      } finally {
        await attention.close();
      }
    });
  }
});
