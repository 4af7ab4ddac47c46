// No single request stalls the server: large prompts are encoded on the tokenizer thread while
// the HTTP thread keeps answering, and a prompt whose size alone exceeds the context is refused
// before any encoding.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ThreadedPromptEncoder } from "../../src/placement/prompt-encoder.js";
import { loadHfTokenizer } from "../../src/tokenizer/index.js";
import { chatPromptIds } from "../../src/tokenizer/prompt-ids.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { type LiveServer, postRaw, startServer } from "./helpers.js";

const HF = sharedDataPath("models", "stories260K", "hf");
const STORY = "Once upon a time there was a little girl named Lily. She loved to play outside. ";

describe("large prompts stay off the event loop", { timeout: 120_000 }, () => {
  let s: LiveServer;
  before(async () => {
    s = await startServer({ model: HF, attentionWorkers: 0 });
  });
  after(() => s.close());

  it("a large /tokenize runs on the tokenizer thread: /health keeps answering, same ids as inline", async () => {
    const text = STORY.repeat(2500); // 200 KB: seconds of tokenizing
    const tokenizing = fetch(`${s.url}/tokenize`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: s.engine.model.id, prompt: text }),
    }).then((r) => r.json() as Promise<{ tokens: number[] }>);
    let done = false;
    const settled = tokenizing.finally(() => {
      done = true;
    });
    let answered = 0;
    let slowest = 0;
    while (!done) {
      const t0 = performance.now();
      assert.equal((await fetch(`${s.url}/health`)).status, 200);
      slowest = Math.max(slowest, performance.now() - t0);
      answered++;
    }
    const { tokens } = await settled;
    // Inline, the event loop would have answered no /health until the tokens were done.
    assert.ok(answered >= 5, `/health answered ${answered} times while the prompt was encoded`);
    const expected = (await loadHfTokenizer(HF)).encode(text);
    assert.deepEqual(tokens, expected);
    assert.ok(slowest < 1000, `slowest /health ${slowest.toFixed(0)} ms`);
  });

  it("a prompt whose size alone exceeds the context is refused before it is encoded", async () => {
    const huge = "a".repeat(7 * 1024 * 1024); // under the 8 MiB body limit
    const t0 = performance.now();
    const r = await postRaw(
      `${s.url}/v1/completions`,
      JSON.stringify({ model: s.engine.model.id, prompt: huge }),
    );
    assert.equal(r.status, 400);
    assert.equal(r.json.error?.code, "context_length_exceeded");
    assert.match(r.json.error?.message ?? "", /at least \d+ tokens/);
    const chat = await postRaw(
      `${s.url}/v1/chat/completions`,
      JSON.stringify({ model: s.engine.model.id, messages: [{ role: "user", content: huge }] }),
    );
    assert.equal(chat.status, 400);
    assert.equal(chat.json.error?.param, "messages");
    // Tokenizing 7 MiB here takes over a minute; refusing it takes a body parse.
    assert.ok(performance.now() - t0 < 20_000);
  });

  it("a long conversation rendered on the tokenizer thread gives the inline ids", async () => {
    const tok = await loadHfTokenizer(HF);
    const encoder = new ThreadedPromptEncoder(tok, { kind: "hf", path: HF, label: "stories260K" });
    try {
      const turns = [
        { role: "system" as const, content: "Tell a story." },
        { role: "user" as const, content: STORY.repeat(300) }, // ~24 KB: over the inline limit
      ];
      assert.deepEqual(await encoder.chat(turns), chatPromptIds(tok, turns));
      const text = STORY.repeat(300);
      assert.deepEqual(await encoder.encode(text, false), tok.encode(text, { addSpecialTokens: false }));
    } finally {
      await encoder.close();
    }
  });
});
