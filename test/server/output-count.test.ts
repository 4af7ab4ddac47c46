// The count of token batches the engine thread posts to the HTTP thread and the HTTP thread sends
// (output-count.ts, spin_wait.h): the addon's calls, their argument checks, and a real server with
// an attention worker on the native data plane (the waits that read the count) that counts a
// request's first-token batch and marks it sent once its stream has written it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadNativeAddon } from "../../src/kernels/native-addon.js";
import { startServer, storiesModelPath } from "./helpers.js";

const addon = () => loadNativeAddon().addon;

describe("output count: the addon's calls", () => {
  it("counts posted batches and waits until the last is sent", () => {
    const a = addon();
    const first = a.outputPosted();
    const second = a.outputPosted();
    assert.equal(second, (first + 1) % 2 ** 32);
    assert.equal(a.outputWaiting(), true);
    a.outputSent(first);
    assert.equal(a.outputWaiting(), true, "one batch is still waiting");
    a.outputSent(second);
    assert.equal(a.outputWaiting(), false);
    // Two engines in one process: a mark older than the last (the other engine's) is ignored.
    a.outputSent(first);
    assert.equal(a.outputWaiting(), false, "an older mark does not bring a sent batch back");
  });

  it("refuses a count that outputPosted cannot have returned", () => {
    const a = addon();
    for (const bad of [-1, 1.5, 2 ** 32, Number.NaN, "3"])
      assert.throws(() => a.outputSent(bad as number), {
        name: "TypeError",
        message: "outputSent: n must be a count from outputPosted",
      });
    assert.equal(a.outputWaiting(), false, "a refused call changes nothing");
  });
});

describe("output count: a served request", () => {
  it("counts the batch with a request's first token and marks it sent after the stream wrote it", async () => {
    const server = await startServer({
      model: storiesModelPath(),
      backend: "native",
      attentionWorkers: 1,
      transport: "shm",
    });
    try {
      const a = addon();
      const before = a.outputPosted();
      a.outputSent(before);
      const stream = await server.client.completions.create({
        model: "stories260K",
        prompt: "Once upon a time",
        max_tokens: 8,
        temperature: 0,
        stream: true,
      });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
      assert.ok(text.length > 0, "the stream carried text");
      // The mark comes in a setImmediate after the events message; give it one.
      await new Promise<void>((resolve) => setImmediate(resolve));
      assert.equal(a.outputWaiting(), false, "every posted batch was marked sent");
      // One request: exactly one batch carried a first token (the later ones are not counted).
      assert.equal(a.outputPosted(), (before + 2) % 2 ** 32);
      a.outputSent((before + 2) % 2 ** 32);
    } finally {
      await server.close();
    }
  });
});
