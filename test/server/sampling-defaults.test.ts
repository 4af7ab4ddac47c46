// Both front ends resolve a request's sampling parameters through the same function, with the
// model's generation_config: `serve` and `generate` sample the same tokens for the same request.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { spawnGroup } from "../helpers/processes.js";
import { type LiveServer, startServer } from "./helpers.js";

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../bin/lamina.js");
const PROMPT = "Once upon a time";
const MAX_TOKENS = 40;
const SEED = 7;
/** Sampling defaults unlike the built-in ones (temperature 1, no top-k, no top-p). */
const GENERATION_CONFIG = {
  bos_token_id: 1,
  eos_token_id: 2,
  do_sample: true,
  temperature: 0.8,
  top_k: 20,
  top_p: 0.9,
};

/** stories260K as a Hugging Face directory whose generation_config sets sampling defaults. */
function modelWithSamplingDefaults(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "lamina-sampling-defaults-"));
  const hf = sharedDataPath("models", "stories260K", "hf");
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
    symlinkSync(path.join(hf, f), path.join(dir, f));
  writeFileSync(path.join(dir, "generation_config.json"), JSON.stringify(GENERATION_CONFIG));
  return dir;
}

describe("sampling defaults: serve and generate agree", { timeout: 120_000 }, () => {
  let dir = "";
  let server: LiveServer | null = null;

  before(async () => {
    dir = modelWithSamplingDefaults();
    server = await startServer({ model: dir, attentionWorkers: 0 });
  });
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function complete(extra: Record<string, unknown> = {}): Promise<string> {
    const res = await server!.client.completions.create({
      model: server!.engine.model.id,
      prompt: PROMPT,
      max_tokens: MAX_TOKENS,
      seed: SEED,
      ...extra,
    });
    return res.choices[0]!.text;
  }

  it("the same request gives identical text through `serve` and `generate`", async () => {
    const served = await complete();
    const cli = spawnGroup(process.execPath, [
      CLI,
      "generate",
      "--model",
      dir,
      "--prompt",
      PROMPT,
      "--max-tokens",
      String(MAX_TOKENS),
      "--seed",
      String(SEED),
      "--json",
    ]);
    try {
      const status = await cli.exited;
      assert.equal(status.code, 0, cli.output());
      const line = cli
        .output()
        .split("\n")
        .find((l) => l.startsWith("{"));
      assert.ok(line, cli.output());
      const generated = JSON.parse(line) as { text: string; token_ids: number[] };
      assert.equal(generated.token_ids.length, MAX_TOKENS);
      assert.equal(served, generated.text);
    } finally {
      await cli.stop();
    }
  });

  it("the defaults applied are the generation_config's, not the built-in ones", async () => {
    const served = await complete();
    const explicit = await complete({ temperature: 0.8, top_p: 0.9, top_k: 20 });
    assert.equal(served, explicit, "generation_config's values fill what the request leaves out");
    const builtIn = await complete({ temperature: 1, top_p: 1, top_k: 0 });
    assert.notEqual(served, builtIn, "the built-in defaults would sample differently");
  });

  it("bounds are the engine's: a temperature above 2 is refused naming the parameter", async () => {
    await assert.rejects(complete({ temperature: 2.5 }), (e: { status?: number; param?: string }) => {
      assert.equal(e.status, 400);
      assert.equal(e.param, "temperature");
      return true;
    });
  });
});
