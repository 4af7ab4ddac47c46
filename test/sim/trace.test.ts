import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  loadTrace,
  parseAzureCsv,
  parseMooncakeJsonl,
  shapeTrace,
  syntheticTrace,
  traceStats,
} from "../../src/sim/trace.js";

describe("sim traces", () => {
  it("parses Azure CSV (fractional timestamps, zero outputs count as one token)", () => {
    const t = parseAzureCsv(
      "TIMESTAMP,ContextTokens,GeneratedTokens\n" +
        "2023-11-16 18:15:46.5000000,374,44\n" +
        "2023-11-16 18:15:47.2500000,396,0\n" +
        "2023-11-16 18:15:46.0000000,10,5\n",
      "t",
    );
    assert.deepEqual([...t.arrival], [0, 0.5, 1.25]);
    assert.deepEqual([...t.prompt], [10, 374, 396]);
    assert.deepEqual([...t.output], [5, 44, 1]);
  });

  it("names the line of a bad Azure row and a bad header", () => {
    assert.throws(
      () => parseAzureCsv("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,abc,3\n", "x.csv"),
      /trace x\.csv: bad row at line 2/,
    );
    assert.throws(() => parseAzureCsv("time,a,b\n", "y.csv"), /CSV header must have TIMESTAMP/);
  });

  it("parses Mooncake JSONL (timestamps in ms) and names bad lines", () => {
    const t = parseMooncakeJsonl(
      '{"timestamp": 0, "input_length": 6758, "output_length": 500, "hash_ids": [0]}\n' +
        '{"timestamp": 1500, "input_length": 10, "output_length": 2}\n',
      "k",
    );
    assert.deepEqual([...t.arrival], [0, 1.5]);
    assert.deepEqual([...t.prompt], [6758, 10]);
    assert.throws(() => parseMooncakeJsonl('{"timestamp": 0}\n{oops\n', "k.jsonl"), /line 1 needs numeric/);
    assert.throws(() => parseMooncakeJsonl("{oops\n", "k.jsonl"), /line 1 is not JSON/);
  });

  it("the shared traces match the request counts and means of Lamina's Table 4", () => {
    const expect: Array<[string, number, number, number]> = [
      ["azure-conv", 19_366, 1154.7, 211.1],
      ["azure-code", 8_819, 2047.8, 27.9],
      ["kimi-conv", 12_031, 12035.1, 342.6],
    ];
    for (const [name, n, p, o] of expect) {
      const s = traceStats(loadTrace(name));
      assert.equal(s.requests, n, name);
      assert.ok(Math.abs(s.meanPrompt - p) / p < 0.005, `${name} prompt ${s.meanPrompt}`);
      // Zero-token outputs are counted as one token, so the mean may sit slightly above the paper's.
      assert.ok(Math.abs(s.meanOutput - o) / o < 0.02, `${name} output ${s.meanOutput}`);
    }
    assert.ok(traceStats(loadTrace("azure-conv")).durationS > 3500);
    assert.throws(() => loadTrace("no-such-trace"), /not found \(use azure-conv, azure-code, kimi-conv/);
  });

  it("synthetic traces are deterministic for a seed and have the requested means", () => {
    const a = syntheticTrace({
      requests: 20_000,
      rate: 10,
      meanPrompt: 500,
      meanOutput: 200,
      sigma: 0.8,
      seed: 7,
    });
    const b = syntheticTrace({
      requests: 20_000,
      rate: 10,
      meanPrompt: 500,
      meanOutput: 200,
      sigma: 0.8,
      seed: 7,
    });
    assert.deepEqual(a.prompt, b.prompt);
    assert.deepEqual(a.arrival, b.arrival);
    const s = traceStats(a);
    assert.ok(Math.abs(s.meanPrompt - 500) / 500 < 0.05, `prompt ${s.meanPrompt}`);
    assert.ok(Math.abs(s.durationS - 2000) / 2000 < 0.05, `duration ${s.durationS}`);
    assert.throws(
      () => syntheticTrace({ requests: 0, rate: 1, meanPrompt: 1, meanOutput: 1, sigma: 0, seed: 1 }),
      /requests/,
    );
  });

  it("saturation puts every arrival at 0; rate scaling divides times; a cut keeps the first requests", () => {
    const t = parseAzureCsv(
      "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,1\n2023-11-16 18:15:48,2,2\n2023-11-16 18:15:50,3,3\n",
      "t",
    );
    assert.deepEqual([...shapeTrace(t, { kind: "saturate" }).arrival], [0, 0, 0]);
    assert.deepEqual([...shapeTrace(t, { kind: "trace", rateScale: 2 }).arrival], [0, 1, 2]);
    assert.deepEqual([...shapeTrace(t, { kind: "trace", rateScale: 1 }, 2).prompt], [1, 2]);
  });
});
