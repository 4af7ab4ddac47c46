import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { findAccelerator, loadCatalog, resolveModel } from "../../src/sim/catalog.js";
import {
  attentionTime,
  clusterPrice,
  kvBytesPerToken,
  kvCapacityAfterWeights,
  kvCapacityTokens,
  matmulParams,
  minimumBandwidth,
  type NonAttentionTime,
  nonAttentionTime,
  prefillTime,
  transferBytesPerStep,
  transferBytesPerTokenLayer,
} from "../../src/sim/cost-model.js";
import { DEFAULT_EFFICIENCY, type Efficiency, gemmMfu } from "../../src/sim/efficiency.js";
import type { Accelerator, SimModel } from "../../src/sim/types.js";

const catalog = loadCatalog();
const llama3 = resolveModel(catalog, "llama3-70b");
const llama65 = resolveModel(catalog, "llama-65b");
const H100 = findAccelerator(catalog, "H100");
const H20 = findAccelerator(catalog, "H20");

// An idealised efficiency so hand computations are exact: full peaks, no overheads.
const IDEAL: Efficiency = {
  ...DEFAULT_EFFICIENCY,
  mfuMax: 1,
  mfuHalfBatch: 0,
  tpMfuLossPerDoubling: 0,
  prefillMfu: 1,
  weightMbu: 1,
  attentionMbu: 1,
  layerOverhead: 0,
  allReduceLatency: 0,
};

describe("sim cost model: PAPERS.md formulas", () => {
  it("LLaMA3-70B sends (2 + 2/G)·e·d = 36,864 B per token per layer, ≈2.95 MB per token per step", () => {
    assert.equal(transferBytesPerTokenLayer(llama3), 36_864);
    assert.equal(transferBytesPerStep(llama3, 1), 2_949_120);
    assert.equal(transferBytesPerStep(llama3, 300), 300 * 2_949_120);
    // G = 1 (LLaMA-65B): 4·e·d = 65,536 B per token per layer.
    assert.equal(transferBytesPerTokenLayer(llama65), 65_536);
  });

  it("KV bytes per token: 2·L·(d/G)·e", () => {
    assert.equal(kvBytesPerToken(llama3), 2 * 80 * 1024 * 2); // 327,680
    assert.equal(kvBytesPerToken(llama65), 2 * 80 * 8192 * 2); // 2,621,440
  });

  it("an 80 GB H100 holds KV for about 30 LLaMA3-70B requests of 8,192 tokens", () => {
    const requests = kvCapacityTokens(llama3, H100.memoryBytes) / 8192;
    assert.ok(Math.abs(requests - 29.8) < 0.05, `got ${requests}`);
  });

  it("KV capacity after weights on 4×H100 (90% usable, 2 GB reserve each): (280 − 137.5) GB / 327,680 B", () => {
    assert.equal(kvCapacityAfterWeights(llama3, H100, 4, DEFAULT_EFFICIENCY), Math.floor(142.5e9 / 327_680));
    assert.equal(kvCapacityAfterWeights(llama3, H100, 1, DEFAULT_EFFICIENCY), 0);
  });

  it("equal-cost setups of Table 5", () => {
    assert.equal(
      clusterPrice([
        { acc: H100, count: 1 },
        { acc: H20, count: 2 },
      ]).toFixed(2),
      "20.32",
    );
    assert.equal(clusterPrice([{ acc: H100, count: 2 }]).toFixed(2), "22.12");
    assert.equal(
      clusterPrice([
        { acc: H100, count: 2 },
        { acc: H20, count: 4 },
      ]).toFixed(2),
      "40.64",
    );
    assert.equal(clusterPrice([{ acc: H100, count: 4 }]).toFixed(2), "44.24");
  });

  it("minimum bandwidth (2 + 2/G)·e·d·B·L / (α·(MTIME + ATIME))", () => {
    // 36,864 · 100 · 80 / (0.2 · 0.04 s) = 3.6864e10 B/s
    assert.equal(minimumBandwidth(llama3, 100, 0.2, 0.03, 0.01), 3.6864e10);
    assert.throws(() => minimumBandwidth(llama3, 100, 0, 0.03, 0.01), /alpha/);
  });

  it("MTIME is a roofline: max(2·N·B / FLOP/s, (e·N + 2·e·B·d·L) / bandwidth)", () => {
    const toy: Accelerator = { ...H100, flops: 1e12, memoryBandwidth: 1e11 };
    const out: NonAttentionTime = { compute: 0, memory: 0, comm: 0, overhead: 0, total: 0 };
    nonAttentionTime(llama3, toy, 1, 1, IDEAL, out);
    const n = matmulParams(llama3);
    assert.equal(out.compute, (2 * n) / 1e12);
    assert.equal(out.memory, (llama3.weightBytes + 2 * 2 * 8192 * 80) / 1e11);
    assert.equal(out.total, out.memory); // bandwidth-bound at batch 1
    nonAttentionTime(llama3, toy, 1, 4096, IDEAL, out);
    assert.equal(out.total, out.compute); // compute-bound at a large batch
    assert.equal(out.compute, (2 * n * 4096) / 1e12);
  });

  it("tensor parallelism adds two ring all-reduces per layer: 2·L·2(tp−1)/tp·e·B·d / link", () => {
    const out: NonAttentionTime = { compute: 0, memory: 0, comm: 0, overhead: 0, total: 0 };
    nonAttentionTime(llama3, H100, 4, 100, IDEAL, out);
    assert.ok(Math.abs(out.comm - (2 * 80 * (2 * 3 * 2 * 100 * 8192)) / (4 * 450e9)) < 1e-12);
  });

  it("ATIME: KV bytes read over devices × bandwidth × MBU", () => {
    const t = attentionTime(llama3, H20, 4, 1e6, DEFAULT_EFFICIENCY);
    assert.equal(t, (1e6 * 327_680) / (4 * 4e12 * DEFAULT_EFFICIENCY.attentionMbu));
  });

  it("prefill adds causal attention 2·L·d·p² to the GEMM FLOPs", () => {
    const toy: Accelerator = { ...H100, flops: 1e15, memoryBandwidth: 1e15 };
    const p = 4096;
    const t = prefillTime(llama3, toy, 1, p, p * p, IDEAL);
    const flops = 2 * matmulParams(llama3) * p + 2 * 80 * 8192 * p * p;
    assert.ok(Math.abs(t - flops / 1e15) < 1e-12);
  });

  it("GEMM MFU grows with batch and shrinks with tensor parallelism", () => {
    assert.ok(gemmMfu(DEFAULT_EFFICIENCY, 1, 1) < gemmMfu(DEFAULT_EFFICIENCY, 64, 1));
    assert.ok(gemmMfu(DEFAULT_EFFICIENCY, 64, 1) < gemmMfu(DEFAULT_EFFICIENCY, 1024, 1));
    assert.ok(gemmMfu(DEFAULT_EFFICIENCY, 256, 8) < gemmMfu(DEFAULT_EFFICIENCY, 256, 1));
    assert.ok(gemmMfu(DEFAULT_EFFICIENCY, 1e9, 1) <= DEFAULT_EFFICIENCY.mfuMax);
  });
});

describe("sim catalogs", () => {
  it("every accelerator names a source and Table 1's values are as published", () => {
    for (const a of catalog.accelerators) assert.ok(a.source.length > 10, a.name);
    for (const name of ["H100", "H20", "TPU-v6e", "A100-80GB", "H200", "L40S", "CPU-SPR-2S"])
      findAccelerator(catalog, name);
    assert.equal(H100.flops, 989e12);
    assert.equal(H20.memoryBandwidth, 4e12);
    assert.equal(H20.pricePerHour, 4.63);
    assert.equal(findAccelerator(catalog, "v6e").memoryBytes, 32e9);
  });

  it("models of Table 3 by name and alias", () => {
    assert.equal(resolveModel(catalog, "LLaMA-33B").weightBytes, 64.7e9);
    assert.equal(resolveModel(catalog, "llama-3-70b").kvHeads, 8);
    assert.equal(resolveModel(catalog, "llama2-13b").layers, 40);
  });

  it("unknown names fail with the list of known ones", () => {
    assert.throws(() => resolveModel(catalog, "gpt-9"), /unknown model "gpt-9"; known: llama-33b/);
    assert.throws(() => findAccelerator(catalog, "B200"), /unknown accelerator "B200"/);
  });

  let root: string;
  before(() => {
    root = mkdtempSync(path.join(tmpdir(), "lamina-sim-catalog-"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("a Hugging Face config.json becomes a model (parameters counted from the shapes)", () => {
    const dir = mkdtempSync(path.join(root, "hf-"));
    const cfg = {
      hidden_size: 8192,
      num_hidden_layers: 80,
      num_attention_heads: 64,
      num_key_value_heads: 8,
      intermediate_size: 28672,
      vocab_size: 128256,
      tie_word_embeddings: false,
      torch_dtype: "bfloat16",
    };
    writeFileSync(path.join(dir, "config.json"), JSON.stringify(cfg));
    const m: SimModel = resolveModel(catalog, dir);
    // Llama-3-70B has 70.55e9 parameters.
    assert.ok(Math.abs(m.params - 70.55e9) / 70.55e9 < 0.002, `params ${m.params}`);
    assert.equal(kvBytesPerToken(m), 327_680);
    writeFileSync(path.join(dir, "bad.json"), JSON.stringify({ ...cfg, num_hidden_layers: "eighty" }));
    assert.throws(
      () => resolveModel(catalog, path.join(dir, "bad.json")),
      /"num_hidden_layers" must be a positive integer/,
    );
    assert.throws(() => resolveModel(catalog, path.join(dir, "missing.json")), /model config not found/);
  });

  it("an extra catalog file is validated and merged over the built-in entries", () => {
    const dir = mkdtempSync(path.join(root, "extra-"));
    const good = path.join(dir, "good.json");
    writeFileSync(
      good,
      JSON.stringify({
        accelerators: [
          {
            name: "H100",
            bf16Tflops: 989,
            memoryGB: 80,
            memoryBandwidthTBs: 3.35,
            interChipGBs: 450,
            networkGbps: 400,
            pricePerHour: 2.5,
            source: "my reserved price",
          },
        ],
      }),
    );
    assert.equal(findAccelerator(loadCatalog([good]), "h100").pricePerHour, 2.5);
    const bad = path.join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ accelerators: [{ name: "X", bf16Tflops: -1 }] }));
    assert.throws(() => loadCatalog([bad]), /catalog .*bad\.json/);
  });
});
