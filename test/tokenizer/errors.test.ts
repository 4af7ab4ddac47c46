import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { loadHfTokenizer, loadLlama2cTokenizer, TokenizerFileError } from "../../src/tokenizer/index.js";
import { sharedDataPath } from "../../src/util/shared-data.js";

const root = mkdtempSync(path.join(tmpdir(), "lamina-tok-"));
after(() => rmSync(root, { recursive: true, force: true }));
const scratch = (): string => mkdtempSync(path.join(root, "case-"));

/** Asserts fn throws a TokenizerFileError whose message names `file` and matches `reason`. */
function throwsNaming(fn: () => unknown, file: string, reason: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TokenizerFileError, `expected TokenizerFileError, got ${String(err)}`);
    assert.equal(err.file, file);
    assert.ok(err.message.includes(file), err.message);
    assert.match(err.message, reason);
    return true;
  });
}

describe("tokenizer loading errors name the file", () => {
  it("missing tokenizer.json", () => {
    const dir = scratch();
    throwsNaming(() => loadHfTokenizer(dir), path.join(dir, "tokenizer.json"), /not found/);
  });

  it("tokenizer.json that is not JSON, or not a tokenizer", () => {
    const dir = scratch();
    const file = path.join(dir, "tokenizer.json");
    writeFileSync(file, '{"model": {"type": "BPE", "vocab": {');
    throwsNaming(() => loadHfTokenizer(dir), file, /not valid JSON/);
    writeFileSync(file, "[1, 2, 3]");
    throwsNaming(() => loadHfTokenizer(dir), file, /no "model" section/);
  });

  it("tokenizer.json the library cannot load", () => {
    const dir = scratch();
    const file = path.join(dir, "tokenizer.json");
    writeFileSync(file, JSON.stringify({ model: { type: "NoSuchModel" } }));
    throwsNaming(() => loadHfTokenizer(dir), file, /cannot be loaded/);
  });

  it("corrupt tokenizer_config.json", () => {
    const dir = scratch();
    copyFileSync(
      sharedDataPath("models", "stories260K", "hf", "tokenizer.json"),
      path.join(dir, "tokenizer.json"),
    );
    const cfg = path.join(dir, "tokenizer_config.json");
    writeFileSync(cfg, "{ not json");
    throwsNaming(() => loadHfTokenizer(dir), cfg, /not valid JSON/);
  });

  it("tokenizer_config.json is optional", () => {
    const dir = scratch();
    copyFileSync(
      sharedDataPath("models", "stories260K", "hf", "tokenizer.json"),
      path.join(dir, "tokenizer.json"),
    );
    const tok = loadHfTokenizer(dir);
    assert.equal(tok.hasChatTemplate, false);
    assert.equal(tok.decode(tok.encode("Once upon a time")), "Once upon a time");
  });

  it("missing, truncated or corrupt tokenizer.bin", () => {
    const dir = scratch();
    const missing = path.join(dir, "tokenizer.bin");
    throwsNaming(() => loadLlama2cTokenizer(missing), missing, /not found/);

    const good = readFileSync(sharedDataPath("models", "stories260K", "tok512.bin"));
    const truncated = path.join(dir, "truncated.bin");
    writeFileSync(truncated, good.subarray(0, good.length - 3));
    throwsNaming(() => loadLlama2cTokenizer(truncated), truncated, /bad length|ends inside token/);
    // Reading a fixed vocabulary size past the end of the file.
    const original = sharedDataPath("models", "stories260K", "tok512.bin");
    throwsNaming(() => loadLlama2cTokenizer(original, { vocabSize: 513 }), original, /expected 513 tokens/);

    const garbage = path.join(dir, "garbage.bin");
    writeFileSync(garbage, Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    throwsNaming(() => loadLlama2cTokenizer(garbage), garbage, /max_token_length/);
  });

  it("a bad vocabSize argument", () => {
    assert.throws(
      () => loadLlama2cTokenizer(sharedDataPath("models", "stories260K", "tok512.bin"), { vocabSize: 1.5 }),
      /vocabSize must be an integer/,
    );
  });
});
