import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { BUILTIN_MODEL_LABEL, builtinModelDir } from "../../src/model/builtin-model.js";
import { loadModel } from "../../src/model/load.js";
import { RANDOM_DEMO_LABEL } from "../../src/model/random-demo-model.js";
import { servedModelId } from "../../src/placement/load-engine.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { engineBackends } from "../helpers/backends.js";
import { generateAlone } from "../helpers/engine-driver.js";

// dist/test/model → the repository root is three levels up.
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const packaged = path.join(repo, "models", "stories260K");
const shared = sharedDataPath("models", "stories260K");

interface GoldenCase {
  prompt: string;
  prompt_token_ids: number[];
  generated_token_ids: number[];
  text_as_printed_by_run_c: string;
}
const golden = JSON.parse(readFileSync(path.join(shared, "golden_stories260K.json"), "utf8")) as {
  cases: GoldenCase[];
};
const PROMPT = "Once upon a time";
const onceUponATime = golden.cases.find((c) => c.prompt === PROMPT)!;

/** The sha256 SOURCE.txt records for a file ("- NAME" followed by "sha256: HEX"). */
function recordedSha256(name: string): string {
  const source = readFileSync(path.join(shared, "SOURCE.txt"), "utf8");
  const m = new RegExp(
    `^- ${name.replace(/\./g, "\\.")}\\n(?:\\s+\\w+:.*\\n)*?\\s+sha256: ([0-9a-f]{64})`,
    "m",
  ).exec(source);
  assert.ok(m, `SOURCE.txt records a sha256 for ${name}`);
  return m[1]!;
}

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-builtin-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("the built-in demo model (stories260K)", () => {
  it("the golden file has a case for the prompt", () => {
    assert.ok(onceUponATime, `golden_stories260K.json has a "${PROMPT}" case`);
  });

  it("ships the unmodified files, with their license and origin", () => {
    assert.equal(builtinModelDir(), packaged);
    for (const name of ["stories260K.bin", "tok512.bin"]) {
      const hash = sha256(path.join(packaged, name));
      assert.equal(hash, recordedSha256(name), name);
      assert.equal(hash, sha256(path.join(shared, name)), name);
      assert.ok(
        readFileSync(path.join(packaged, "README.md"), "utf8").includes(hash),
        `README names ${name}'s sha256`,
      );
    }
    const license = readFileSync(path.join(packaged, "LICENSE"), "utf8");
    assert.match(license, /MIT License/);
    assert.match(license, /Copyright \(c\) 2023 Andrej Karpathy/);
    assert.match(readFileSync(path.join(packaged, "README.md"), "utf8"), /karpathy\/tinyllamas/);
    const pkg = JSON.parse(readFileSync(path.join(repo, "package.json"), "utf8")) as { files: string[] };
    assert.ok(pkg.files.includes("models"), "package.json files ships models/");
  });

  it("no spec or 'demo' loads it as llama2.c with the packaged tokenizer, whatever the working directory", async () => {
    const cwd = process.cwd();
    process.chdir(tmp);
    let a: Awaited<ReturnType<typeof loadModel>>;
    try {
      a = await loadModel();
    } finally {
      process.chdir(cwd);
    }
    const b = await loadModel("demo");
    for (const m of [a, b]) {
      assert.equal(m.source.kind, "llama2c");
      assert.equal(m.source.path, path.join(packaged, "stories260K.bin"));
      assert.equal(m.source.tokenizerPath, path.join(packaged, "tok512.bin"));
      assert.equal(m.source.label, BUILTIN_MODEL_LABEL);
      assert.match(m.source.label, /stories260K.*TinyStories/);
      assert.equal(m.tokenizer.vocabSize, 512);
      assert.deepEqual(m.tokenizer.encode(PROMPT), onceUponATime.prompt_token_ids);
    }
    const reference = await loadModel(path.join(shared, "stories260K.bin"));
    assert.deepEqual(a.config, reference.config);
    assert.equal(servedModelId({}, a), "stories260K");
  });

  it("'random' still gives the random-weight demo model", async () => {
    const m = await loadModel("random");
    assert.equal(m.source.kind, "demo");
    assert.equal(m.source.label, RANDOM_DEMO_LABEL);
    assert.equal(m.tokenizer.vocabSize, 258);
  });

  for (const { name, backend } of engineBackends()) {
    it(`greedy output for "${PROMPT}" equals the golden ids (${name} kernels)`, async () => {
      const model = await loadModel();
      const tokens = await generateAlone(
        model,
        backend,
        onceUponATime.prompt_token_ids,
        onceUponATime.generated_token_ids.length,
      );
      assert.deepEqual(tokens, onceUponATime.generated_token_ids);
      assert.ok(
        onceUponATime.text_as_printed_by_run_c.startsWith(PROMPT + model.tokenizer.decode(tokens)),
        "the decoded text is run.c's",
      );
    });
  }

  it("`lamina generate` with no --model prints the golden continuation", async () => {
    const maxTokens = 30;
    const child = spawn(
      process.execPath,
      [
        path.join(repo, "bin", "lamina.js"),
        "generate",
        "--prompt",
        PROMPT,
        "--max-tokens",
        String(maxTokens),
        "--temperature",
        "0",
        "--json",
      ],
      { cwd: tmp, stdio: ["ignore", "pipe", "pipe"] },
    );
    try {
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`generate did not finish in 60 s:\n${stderr}`)),
          60_000,
        );
        child.once("exit", (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      assert.equal(code, 0, stderr);
      const out = JSON.parse(stdout) as { prompt_token_ids: number[]; token_ids: number[]; text: string };
      const expectedIds = onceUponATime.generated_token_ids.slice(0, maxTokens);
      assert.deepEqual(out.prompt_token_ids, onceUponATime.prompt_token_ids);
      assert.deepEqual(out.token_ids, expectedIds);
      const model = await loadModel(path.join(shared, "stories260K.bin"));
      assert.equal(out.text, model.tokenizer.decode(expectedIds));
      assert.equal(
        out.text,
        ", there was a little girl named Lily. She loved to play outside in the park. One day,",
      );
      assert.ok(onceUponATime.text_as_printed_by_run_c.startsWith(PROMPT + out.text));
    } finally {
      child.kill("SIGKILL");
    }
  });
});
