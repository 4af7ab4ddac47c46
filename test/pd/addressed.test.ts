// Prefill instances at addresses: `lamina prefill-instance` processes listening on TCP, reached by
// the decode instance with prefillInstanceAddrs (the CLI's --prefill-instance-addrs). The decode
// instance must give the colocated greedy tokens in pd and adrenaline modes, leave no KV behind,
// and refuse a wrong shared secret with a clear error.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { GenerateRequest } from "../../src/engine/api.js";
import { buildEngineCore } from "../../src/engine/build-core.js";
import type { EngineOptions } from "../../src/engine/options.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildPdEngineCore } from "../../src/pd/setup.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";

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

/** Starts `lamina prefill-instance` on a free loopback port; resolves with its address. */
function startInstance(modelDir: string): Promise<{ child: ChildProcess; addr: string }> {
  const args = [BIN, "prefill-instance", "--listen", "127.0.0.1:0", "--token", TOKEN, "--model", modelDir];
  args.push("--threads", "2", "--prefill-threads", "1", "--max-tokens-per-step", "64");
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`prefill instance did not start:\n${log}`)), 30_000);
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (d: string) => {
      log += d;
      const m = /listening on (127\.0\.0\.1:\d+) /.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({ child, addr: m[1]! });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`prefill instance exited (${code}):\n${log}`));
    });
  });
}

describe("prefill instances at addresses (lamina prefill-instance over TCP)", () => {
  const modelDir = path.join(sharedDataPath("models", "stories260K"), "hf");
  let model: LoadedModel;
  let expected: number[][];
  let instance: { child: ChildProcess; addr: string };

  before(async () => {
    model = await loadModel(modelDir);
    const colocated = await runToCompletion(buildEngineCore(model, backend, SIZES), requests(model));
    expected = [...colocated.values()].map((c) => c.tokens);
    instance = await startInstance(modelDir);
  });
  after(() => {
    instance?.child.kill("SIGKILL");
  });

  for (const o of [{ mode: "pd" }, { mode: "adrenaline", offloadRatio: 1 }] as const) {
    it(`${o.mode}: the colocated greedy tokens, no KV block left on the instance`, async () => {
      const { core, attention } = await buildPdEngineCore(model, backend, {
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

  it("a wrong secret or a missing one is a clear error, and the instance keeps serving", async () => {
    await assert.rejects(
      buildPdEngineCore(model, backend, {
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
        buildPdEngineCore(model, backend, { ...SIZES, mode: "pd", prefillInstanceAddrs: [instance.addr] }),
        /need the shared secret/,
      );
    } finally {
      if (saved !== undefined) process.env.LAMINA_ATTENTION_TOKEN = saved;
    }
    const { core, attention } = await buildPdEngineCore(model, backend, {
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
