// Prefill instances at addresses: `lamina prefill-instance` processes listening on TCP, reached by
// the decode instance with prefillInstanceAddrs (the CLI's --prefill-instance-addrs). The decode
// instance must give the colocated greedy tokens in pd and adrenaline modes, leave no KV behind,
// and refuse a wrong shared secret with a clear error.
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { GenerateRequest } from "../../src/engine/api.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine, buildPdEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";
import { type GroupChild, spawnGroup } from "../helpers/processes.js";

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../bin/lamina.js");
const TOKEN = "prefill-instance-test-secret";
const backend = nativeBackend();
const SIZES: EngineOptions = { maxTokensPerStep: 16, maxRunning: 8, blockSize: 4 };

function requests(model: LoadedModel): GenerateRequest[] {
  return ["Once upon a time", "The little dog", "Lily and Ben went to the park and", "Tom"].map((p, i) => ({
    id: `r${i}`,
    promptTokenIds: model.tokenizer.encode(p),
    params: greedy(16 + 4 * i, { ignoreEos: true }),
  }));
}

/**
 * Starts `lamina prefill-instance` on a free loopback port (in its own process group, so its
 * executor processes go with it) and resolves with its address; if it does not start, it is
 * killed before the error is thrown.
 */
async function startInstance(modelDir: string): Promise<{ proc: GroupChild; addr: string }> {
  const args = [BIN, "prefill-instance", "--listen", "127.0.0.1:0", "--token", TOKEN, "--model", modelDir];
  args.push("--threads", "2", "--prefill-threads", "1", "--max-tokens-per-step", "64");
  const proc = spawnGroup(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
  try {
    const m = await proc.waitForOutput(/listening on (127\.0\.0\.1:\d+) /, "listening line", 30_000);
    return { proc, addr: m[1]! };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

describe("prefill instances at addresses (lamina prefill-instance over TCP)", () => {
  const modelDir = path.join(sharedDataPath("models", "stories260K"), "hf");
  let model: LoadedModel;
  let expected: number[][];
  let instance: { proc: GroupChild; addr: string };

  before(async () => {
    model = await loadModel(modelDir);
    const colocated = await runToCompletion(buildColocatedEngine(model, backend, SIZES), requests(model));
    expected = [...colocated.values()].map((c) => c.tokens);
    instance = await startInstance(modelDir);
  });
  after(() => instance?.proc.stop());

  for (const o of [{ mode: "pd" }, { mode: "adrenaline", offloadRatio: 1 }] as const) {
    it(`${o.mode}: the colocated greedy tokens, no KV block left on the instance`, {
      timeout: 60_000,
    }, async () => {
      const { core, attention } = await buildPdEngine(model, backend, {
        ...SIZES,
        ...o,
        prefillInstanceAddrs: [instance.addr],
        attentionToken: TOKEN,
      });
      try {
        const res = await runToCompletion(core, requests(model));
        assert.deepEqual(
          [...res.values()].map((r) => r.tokens),
          expected,
        );
        if (o.mode === "adrenaline") assert.ok(attention.decisions > 0 && attention.maxRatioSeen > 0);
        for (const x of attention.instances) {
          const [w] = await x.remote.workerStats();
          assert.equal(w?.usedBlocks, 0, "the executor holds no KV block");
        }
      } finally {
        await attention.close();
      }
    });
  }

  it("a wrong secret or a missing one is a clear error, and the instance keeps serving", {
    timeout: 60_000,
  }, async () => {
    await assert.rejects(
      buildPdEngine(model, backend, {
        ...SIZES,
        mode: "pd",
        prefillInstanceAddrs: [instance.addr],
        attentionToken: "not-the-right-secret-at-all",
      }),
      /handshake|authentic|secret/i,
    );
    const saved = process.env.LAMINA_ATTENTION_TOKEN;
    delete process.env.LAMINA_ATTENTION_TOKEN;
    try {
      await assert.rejects(
        buildPdEngine(model, backend, { ...SIZES, mode: "pd", prefillInstanceAddrs: [instance.addr] }),
        /need the shared secret/,
      );
    } finally {
      if (saved !== undefined) process.env.LAMINA_ATTENTION_TOKEN = saved;
    }
    const { core, attention } = await buildPdEngine(model, backend, {
      ...SIZES,
      mode: "pd",
      prefillInstanceAddrs: [instance.addr],
      attentionToken: TOKEN,
    });
    try {
      const res = await runToCompletion(core, requests(model).slice(0, 1));
      assert.deepEqual([...res.values()][0]!.tokens, expected[0]);
    } finally {
      await attention.close();
    }
  });
});
