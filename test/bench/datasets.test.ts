import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  clampToContext,
  DEFAULT_DATASET_FILES,
  loadDataset,
  parseAzureCsv,
  parseAzureTimestamp,
  parseMooncakeJsonl,
  parseShareGpt,
  randomDataset,
  takeWrapping,
} from "../../src/bench/datasets.js";
import { synthesizePrompt } from "../../src/bench/prompts.js";
import { BenchRng } from "../../src/bench/rng.js";
import { sharedDataPath } from "../../src/util/shared-data.js";

const random = { inputLen: 100, outputLen: 20, rangeRatio: 0 };

describe("bench datasets", () => {
  it("parses Azure CSV rows with timestamps relative to the first, 100 ns digits kept", () => {
    const csv =
      "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n2023-11-16 18:16:00.0000000,10,0\n";
    const r = parseAzureCsv(csv);
    assert.equal(r.length, 3);
    assert.deepEqual(
      r.map((x) => [x.promptLen, x.outputLen]),
      [
        [374, 44],
        [396, 109],
        [10, 1],
      ],
    );
    assert.equal(r[0]!.timestamp, 0);
    assert.ok(Math.abs(r[1]!.timestamp! - 4.314579) < 1e-6);
    assert.equal(parseAzureTimestamp("2023-11-16 18:15:46.5"), Date.UTC(2023, 10, 16, 18, 15, 46, 500));
    assert.throws(
      () => parseAzureCsv("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\n", "x.csv"),
      /x\.csv: line 2/,
    );
    assert.throws(() => parseAzureCsv("when,ctx\n"), /lacks column TIMESTAMP/);
  });

  it("reads the shared Azure traces: the conversation trace's first requests and its mean lengths", () => {
    const conv = parseAzureCsv(readFileSync(sharedDataPath(...DEFAULT_DATASET_FILES["azure-conv"]), "utf8"));
    assert.deepEqual([conv[0]!.promptLen, conv[0]!.outputLen], [374, 44]);
    assert.ok(conv.length > 10_000);
    const meanPrompt = conv.reduce((s, r) => s + r.promptLen, 0) / conv.length;
    // The published trace statistics: mean prompt ≈ 1155 tokens for conversations.
    assert.ok(meanPrompt > 900 && meanPrompt < 1400, `mean prompt ${meanPrompt}`);
    for (let i = 1; i < conv.length; i++) assert.ok(conv[i]!.timestamp! >= conv[i - 1]!.timestamp!);
    const code = parseAzureCsv(readFileSync(sharedDataPath(...DEFAULT_DATASET_FILES["azure-code"]), "utf8"));
    assert.deepEqual([code[0]!.promptLen, code[0]!.outputLen], [4808, 10]);
  });

  it("parses Mooncake JSONL (ms timestamps) and rejects malformed lines", () => {
    const text =
      '{"timestamp": 0, "input_length": 6758, "output_length": 500, "hash_ids": [0]}\n\n{"timestamp": 2500, "input_length": 10, "output_length": 3, "hash_ids": []}\n';
    assert.deepEqual(parseMooncakeJsonl(text), [
      { promptLen: 6758, outputLen: 500, timestamp: 0, prefixBlocks: [0] },
      { promptLen: 10, outputLen: 3, timestamp: 2.5, prefixBlocks: [] },
    ]);
    assert.throws(() => parseMooncakeJsonl('{"timestamp": 0}\n', "m.jsonl"), /m\.jsonl: line 1/);
    assert.throws(() => parseMooncakeJsonl("not json\n", "m.jsonl"), /line 1 is not JSON/);
    const shared = parseMooncakeJsonl(
      readFileSync(sharedDataPath(...DEFAULT_DATASET_FILES.mooncake), "utf8"),
    );
    assert.deepEqual(shared[0], {
      promptLen: 6758,
      outputLen: 500,
      timestamp: 0,
      prefixBlocks: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
    });
  });

  it("takes ShareGPT's first human turn, skipping conversations without one", () => {
    const json = JSON.stringify([
      { id: "a", conversations: [{ from: "human", value: "Hello there" }] },
      { id: "b", conversations: [{ from: "gpt", value: "only a reply" }] },
      { id: "c", conversations: [] },
      { id: "d", conversations: [{ from: "human", value: "Second" }] },
    ]);
    assert.deepEqual(parseShareGpt(json, 64), [
      { promptText: "Hello there", promptLen: 0, outputLen: 64 },
      { promptText: "Second", promptLen: 0, outputLen: 64 },
    ]);
    assert.throws(() => parseShareGpt("{}", 1), /expected a JSON array/);
    const shared = loadDataset("sharegpt", {
      path: sharedDataPath(...DEFAULT_DATASET_FILES.sharegpt),
      numPrompts: 50,
      outputLen: 32,
      random,
      seed: 1,
    });
    assert.equal(shared.length, 50);
    assert.ok(shared.every((r) => typeof r.promptText === "string" && r.promptText.length > 0));
  });

  it("random lengths stay within ±ratio of the mean and are reproducible from the seed", () => {
    const o = { inputLen: 200, outputLen: 50, rangeRatio: 0.25 };
    const a = randomDataset(500, o, new BenchRng(5));
    const b = randomDataset(500, o, new BenchRng(5));
    assert.deepEqual(a, b);
    for (const r of a) {
      assert.ok(r.promptLen >= 150 && r.promptLen <= 250, String(r.promptLen));
      assert.ok(r.outputLen >= 37 && r.outputLen <= 63, String(r.outputLen));
    }
    assert.ok(new Set(a.map((r) => r.promptLen)).size > 50);
    assert.deepEqual(randomDataset(3, random, new BenchRng(1)), [
      { promptLen: 100, outputLen: 20 },
      { promptLen: 100, outputLen: 20 },
      { promptLen: 100, outputLen: 20 },
    ]);
  });

  it("a short trace wraps around with its timestamps shifted past the previous lap", () => {
    const trace = [
      { promptLen: 1, outputLen: 1, timestamp: 0 },
      { promptLen: 2, outputLen: 1, timestamp: 2 },
    ];
    assert.deepEqual(
      takeWrapping(trace, 5).map((r) => r.timestamp),
      [0, 2, 3, 5, 6],
    );
  });

  it("clamps prompt + output to the context: output up to half of it, the prompt cut to fit", () => {
    assert.deepEqual(clampToContext({ promptLen: 100, outputLen: 50 }, 512), {
      promptLen: 100,
      outputLen: 50,
    });
    assert.deepEqual(clampToContext({ promptLen: 6758, outputLen: 500 }, 512), {
      promptLen: 256,
      outputLen: 256,
    });
    assert.deepEqual(clampToContext({ promptLen: 4808, outputLen: 10 }, 512), {
      promptLen: 502,
      outputLen: 10,
    });
    assert.deepEqual(clampToContext({ promptLen: 3, outputLen: 900 }, 512), { promptLen: 3, outputLen: 256 });
  });

  it("synthesised prompts have the exact length, lead with BOS, and differ between requests", () => {
    const pool = Array.from({ length: 1000 }, (_, i) => 10 + i);
    const a = synthesizePrompt(pool, [1], 64, { promptLen: 64, outputLen: 1 }, 0);
    const b = synthesizePrompt(pool, [1], 64, { promptLen: 64, outputLen: 1 }, 500);
    assert.equal(a.length, 64);
    assert.equal(a[0], 1);
    assert.notDeepEqual(a.slice(1, 10), b.slice(1, 10));
    assert.deepEqual(synthesizePrompt(pool, [1], 1, { promptLen: 1, outputLen: 1 }, 3), [13]);
  });

  it("--random-prefix-len: every prompt starts with the same tokens, then its own", () => {
    const reqs = randomDataset(
      3,
      { inputLen: 40, outputLen: 4, rangeRatio: 0, prefixLen: 100 },
      new BenchRng(2),
    );
    assert.deepEqual(
      reqs.map((r) => [r.promptLen, r.sharedPrefixLen]),
      [
        [140, 100],
        [140, 100],
        [140, 100],
      ],
    );
    const pool = Array.from({ length: 5000 }, (_, i) => i);
    const [a, b] = reqs.map((r, i) => synthesizePrompt(pool, [1], r.promptLen, r, 1000 * (i + 1)));
    assert.equal(a!.length, 140);
    assert.equal(a![0], 1);
    assert.deepEqual(a!.slice(0, 100), b!.slice(0, 100), "the shared prefix, BOS included");
    assert.notDeepEqual(a!.slice(100, 110), b!.slice(100, 110), "each prompt's own tokens");
    // Clamped below the shared length, a prompt is all shared prefix.
    assert.deepEqual(synthesizePrompt(pool, [1], 30, reqs[2]!, 7), a!.slice(0, 30));
  });

  it("Mooncake prefix blocks become shared token prefixes, scaled when the prompt is clamped", () => {
    const pool = Array.from({ length: 5000 }, (_, i) => i);
    const x = { promptLen: 1500, outputLen: 1, prefixBlocks: [0, 1, 2] };
    const y = { promptLen: 1300, outputLen: 1, prefixBlocks: [0, 1, 7] };
    const a = synthesizePrompt(pool, [], 1500, x, 11);
    const b = synthesizePrompt(pool, [], 1300, y, 999);
    assert.equal(a.length, 1500);
    assert.equal(b.length, 1300);
    assert.deepEqual(a.slice(0, 1024), b.slice(0, 1024), "blocks 0 and 1 are shared");
    assert.notDeepEqual(a.slice(1024, 1100), b.slice(1024, 1100), "block 2 differs from block 7");
    // Clamped to a tenth of their length, both keep a shared first (shrunken) block of ~51 tokens.
    const ca = synthesizePrompt(pool, [], 150, x, 11);
    const cb = synthesizePrompt(pool, [], 130, y, 999);
    assert.deepEqual(ca.slice(0, 51), cb.slice(0, 51));
    assert.equal(ca.length, 150);
  });
});
