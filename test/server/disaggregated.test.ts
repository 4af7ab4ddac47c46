// The HTTP server in front of the disaggregated placements: attention workers spawned as
// processes (shared memory and TCP), and PD with a prefill instance. Each serves the same greedy
// text as the in-process server, streams and aborts as it does, and frees every KV block.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { EngineOptions } from "../../src/placement/options.js";
import { kvUsed, type LiveServer, startServer, storiesModelPath, waitFor } from "./helpers.js";

const PROMPTS = ["Once upon a time", "Lily and Tom", "The dog"];

async function greedyTexts(s: LiveServer): Promise<string[]> {
  return Promise.all(
    PROMPTS.map(async (prompt) => {
      const r = await s.client.completions.create({
        model: "stories260K",
        prompt,
        max_tokens: 32,
        temperature: 0,
      });
      return r.choices[0]!.text;
    }),
  );
}

const PLACEMENTS: { name: string; options: EngineOptions }[] = [
  { name: "1 attention worker over shared memory", options: { attentionWorkers: 1, transport: "shm" } },
  {
    name: "2 attention workers over TCP, request partition",
    options: { attentionWorkers: 2, transport: "tcp", partition: "request" },
  },
  { name: "pd with 1 prefill instance", options: { mode: "pd", prefillInstances: 1 } },
];

describe("the HTTP server over disaggregated placements", { timeout: 180_000 }, () => {
  let expected: string[] = [];
  before(async () => {
    const s = await startServer({ model: storiesModelPath(), attentionWorkers: 0 });
    try {
      expected = await greedyTexts(s);
    } finally {
      await s.close();
    }
  });

  for (const p of PLACEMENTS) {
    describe(p.name, { timeout: 90_000 }, () => {
      let s: LiveServer | null = null;
      before(async () => {
        s = await startServer({ model: storiesModelPath(), maxRunning: 8, ...p.options });
      });
      after(async () => {
        await s?.close();
      });

      it("serves the in-process server's greedy text, and frees every KV block", async () => {
        assert.deepEqual(await greedyTexts(s!), expected);
        assert.ok(await waitFor(() => kvUsed(s!.engine) === 0), `KV freed (used ${kvUsed(s!.engine)})`);
      });

      it("a stream the client abandons is aborted and its KV freed on the workers", async () => {
        const controller = new AbortController();
        const before = s!.engine.stats().generationTokens;
        const abortsBefore = s!.engine.abortsSent;
        s!.engine.hold(8); // still running when the client goes away
        const stream = await s!.client.completions.create(
          {
            model: "stories260K",
            prompt: "Once",
            max_tokens: 400,
            stream: true,
            ...({ ignore_eos: true } as object),
          },
          { signal: controller.signal },
        );
        let chunks = 0;
        try {
          for await (const _ of stream) if (++chunks === 3) controller.abort();
        } catch (err) {
          assert.match(String((err as Error).name), /Abort/);
        }
        assert.ok(await waitFor(() => s!.engine.abortsSent > abortsBefore), "the server sent the abort");
        s!.engine.release();
        assert.ok(
          await waitFor(() => kvUsed(s!.engine) === 0 && s!.engine.stats().running === 0),
          `KV freed (used ${kvUsed(s!.engine)})`,
        );
        const generated = s!.engine.stats().generationTokens - before;
        assert.ok(generated <= 9, `generation stopped at the abort (${generated} of 400 tokens)`);
      });
    });
  }
});
