import { readFileSync } from "node:fs";
import { KvAttention } from "../../src/attention/kv-attention.js";
import { median } from "../../src/bench/stats.js";
import type { KernelBackend, PreparedWeight } from "../../src/kernels/backend.js";
import type { ModelConfig } from "../../src/model/config.js";
import { allocTensorData, type DType, f32ToBf16, f32ToF16 } from "../../src/model/tensor.js";
import { DEFAULT_BLOCK_SIZE } from "../../src/placement/sizes.js";
import { createModelStep } from "../../src/runtime/step.js";
import { fitGemm, fitLine } from "./fit.js";

/**
 * Kernel rates of this machine with the project's own kernels, on the shapes of the model the
 * engine will run: its linear layers (every layer's own weights, so they stream from DRAM as in a
 * decode step) and its decode attention over a paged KV cache.
 */

/** Median of `reps` timings of fn (s), each after `before` (untimed); one untimed warm-up. */
export function timeMedian(reps: number, fn: () => void, before: () => void = () => {}): number {
  fn();
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    before();
    const t0 = performance.now();
    fn();
    t.push((performance.now() - t0) / 1000);
  }
  return median(t);
}

/**
 * A streaming read past the last-level cache, for the sweeps to run before each timed pass: a decode
 * step of a model larger than the cache finds its weights and KV evicted by everything the step
 * before it read. Passes timed back to back instead find a model of the cache's size in it (the
 * calibration's 104 MB of weights on a host whose cache holds them: 1.2-1.8x faster than from DRAM,
 * how much moving from one minute to the next with what else the host runs), a rate no served model
 * reaches. Twice the last-level cache the OS reports, between 256 MiB and 1 GiB; a no-op on a
 * backend without a streaming read (the JavaScript reference).
 */
export function cacheEvictor(backend: KernelBackend): () => void {
  const read = (backend as { streamRead?: (x: Float32Array) => number }).streamRead;
  if (!read) return () => {};
  const buffer = new Float32Array(evictionBytes() / 4).fill(1);
  return () => void read.call(backend, buffer);
}

function evictionBytes(): number {
  const MiB = 1 << 20;
  let llc = 0;
  try {
    const text = readFileSync("/sys/devices/system/cpu/cpu0/cache/index3/size", "utf8").trim();
    const m = /^(\d+)([KMG]?)$/.exec(text);
    if (m) llc = Number(m[1]) * ({ "": 1, K: 1024, M: MiB, G: 1024 * MiB }[m[2]!] ?? 1);
  } catch {
    // No sysfs (not Linux) or no L3 listed: the floor below.
  }
  return Math.min(1024 * MiB, Math.max(256 * MiB, 2 * llc));
}

/** [rows, cols] of every linear weight of one decoder layer, plus the lm_head once. */
export function linearShapes(c: ModelConfig): { layer: [number, number][]; head: [number, number] } {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  return {
    layer: [
      [q, c.hiddenSize],
      [kv, c.hiddenSize],
      [kv, c.hiddenSize],
      [c.hiddenSize, q],
      [c.intermediateSize, c.hiddenSize],
      [c.intermediateSize, c.hiddenSize],
      [c.hiddenSize, c.intermediateSize],
    ],
    head: [c.vocabSize, c.hiddenSize],
  };
}

/**
 * The model's matrix products as one decode pass (every layer's own weights, so they stream from
 * DRAM as in a decode step, then the lm_head): `pass(batch)` runs it for up to `maxBatch` rows.
 * With `between`, each layer's attention runs where the engine runs it (after the k and v
 * projections) and the pass returns the products' own time (s).
 */
export function linearPass(
  backend: KernelBackend,
  c: ModelConfig,
  dtype: DType,
  maxBatch: number,
): { params: number; pass: (batch: number, between?: (layer: number) => void) => number } {
  const shapes = linearShapes(c);
  const all: [number, number][] = [];
  for (let l = 0; l < c.numLayers; l++) all.push(...shapes.layer);
  all.push(shapes.head);
  const one = dtype === "f32" ? 0.01 : dtype === "bf16" ? f32ToBf16(0.01) : f32ToF16(0.01);
  const weights: PreparedWeight[] = all.map(([rows, cols], i) => {
    const data = allocTensorData(dtype, rows * cols);
    data.fill(one);
    return backend.prepareWeight({ name: `w${i}`, dtype, shape: [rows, cols], data });
  });
  const widest = Math.max(...all.map(([r, k]) => Math.max(r, k)));
  const x = new Float32Array(maxBatch * widest).fill(0.5);
  const out = new Float32Array(maxBatch * widest);
  const perLayer = shapes.layer.length;
  return {
    params: all.reduce((s, [r, k]) => s + r * k, 0),
    pass: (batch, between) => {
      let products = 0;
      let t0 = performance.now();
      weights.forEach((w, i) => {
        backend.matmul(out, x, w, batch);
        // q, k and v of layer l done: its attention runs, untimed.
        if (between && i % perLayer === 2 && i < c.numLayers * perLayer) {
          products += performance.now() - t0;
          between((i / perLayer) | 0);
          t0 = performance.now();
        }
      });
      return (products + performance.now() - t0) / 1000;
    },
  };
}

/**
 * Each layer's decode attention for the first `batch` of `maxBatch` sequences at `context` keys,
 * on written caches of the model's layers: what runs between a layer's products in the engine's
 * colocated decode step (measureGemm's `between`). `prepare(batch)` before each pass.
 */
export function decodeAttentionBetween(
  backend: KernelBackend,
  c: ModelConfig,
  kvDtype: DType,
  maxBatch: number,
  context: number,
): { prepare: (batch: number) => void; run: (layer: number) => void } {
  const kv = attentionCaches(backend, c, kvDtype, c.numLayers, maxBatch, context + 1);
  reserveInterleaved(kv, maxBatch, context + 1);
  const calls = decodeCalls(kv, c, maxBatch);
  return { prepare: (batch) => calls.prepare(batch, context), run: calls.run };
}

/**
 * One decode token for each of the first `batch` sequences at `context` keys (`prepare`), and each
 * layer's attention call for them (`run`), on buffers made once for up to `maxBatch` sequences.
 */
function decodeCalls(
  kv: KvAttention,
  c: ModelConfig,
  maxBatch: number,
): { prepare: (batch: number, context: number) => void; run: (layer: number) => void } {
  const q = new Float32Array(maxBatch * c.numHeads * c.headDim).fill(0.1);
  const k = new Float32Array(maxBatch * c.numKvHeads * c.headDim).fill(0.1);
  const out = new Float32Array(q.length);
  const step = createModelStep(maxBatch, maxBatch, 0);
  return {
    prepare: (batch, context) => {
      for (let s = 0; s < batch; s++) {
        step.seqIds[s] = s;
        step.seqStart[s] = s;
        step.positions[s] = context;
      }
      step.seqStart[batch] = batch;
      step.nSeqs = batch;
      step.nTokens = batch;
      kv.prepare(step);
    },
    run: (layer) => kv.run(layer, step, q, k, k, out),
  };
}

export interface GemmSweep {
  readonly dtype: DType;
  readonly threads: number;
  /** Matrix parameters of one pass (all layers + lm_head). */
  readonly params: number;
  readonly points: { batch: number; seconds: number; gflops: number; gbPerS: number }[];
  /** Batch-1 weight streaming rate, bytes/s. */
  readonly weightBandwidth: number;
  readonly peakFlops: number;
  readonly halfBatch: number;
}

/** What runs before and between a GEMM sweep's timed passes (measureGemm). */
export interface PassSetting {
  /** Before each timed pass (cacheEvictor: the weights from DRAM). */
  readonly evict?: () => void;
  /** Each layer's attention between its products, as the colocated engine runs it (decodeAttentionBetween). */
  readonly between?: { readonly prepare: (batch: number) => void; readonly run: (layer: number) => void };
}

/**
 * A full pass of the model's matrix products at each batch: FLOP/s against batch, fit to the
 * simulator's roofline max(2·N·(B + h)/peak, bytes/bandwidth) (see fit.ts). `setting` says what
 * each timed pass finds around it: a read that evicts the cache before it (the weights from DRAM,
 * as a model larger than the cache reads them), and each layer's attention on the same threads
 * between its products (as the colocated engine and a PD decode instance run them: the products
 * measured back to back ran 1.2-1.4x faster per call at 28 sequences than between attention calls
 * on the AMX Xeon). Without an eviction an untimed pass precedes each timed one.
 */
export function measureGemm(
  backend: KernelBackend,
  c: ModelConfig,
  dtype: DType,
  threads: number,
  batches: readonly number[],
  reps: number,
  setting: PassSetting = {},
): GemmSweep {
  backend.setThreads(threads);
  const { params, pass } = linearPass(backend, c, dtype, Math.max(...batches));
  const bytesPerParam = dtype === "f32" ? 4 : 2;
  const { evict, between } = setting;
  const timed = (batch: number): number => {
    between?.prepare(batch);
    // Without an eviction, an untimed pass first leaves the state back-to-back passes find.
    if (evict) evict();
    else pass(batch, between?.run);
    return pass(batch, between?.run);
  };
  // Repetitions go round the whole sweep, so a change in machine load hits every batch alike.
  const times = batches.map(() => [] as number[]);
  for (let r = 0; r < reps; r++)
    batches.forEach((batch, i) => {
      times[i]!.push(timed(batch));
    });
  const points = batches.map((batch, i) => {
    const seconds = median(times[i]!);
    return {
      batch,
      seconds,
      gflops: (2 * params * batch) / seconds / 1e9,
      gbPerS: (params * bytesPerParam) / seconds / 1e9,
    };
  });
  const b1 = points.find((p) => p.batch === 1);
  if (!b1) throw new Error("measureGemm: the batch sweep must include batch 1 (the GEMV rate)");
  const weightBandwidth = (params * bytesPerParam) / b1.seconds;
  const fit = fitGemm(
    points.map((p) => ({ batch: p.batch, seconds: p.seconds })),
    params,
    (b) => (params * bytesPerParam + 2 * bytesPerParam * b * c.hiddenSize * c.numLayers) / weightBandwidth,
  );
  return { dtype, threads, params, points, weightBandwidth, ...fit };
}

export interface AttentionSweep {
  readonly threads: number;
  readonly batch: number;
  readonly points: { context: number; seconds: number; gbPerS: number }[];
  /** Slope of KV bytes against time (bytes/s): the rate the simulator's attention term uses. */
  readonly bandwidth: number;
  /** Intercept: fixed cost of one layer's attention call for the whole batch (s). */
  readonly fixedS: number;
  /** The intercept shared over the batch's sequences: a sequence's cost per layer before its bytes (s). */
  readonly seqS: number;
}

/**
 * Layer caches the attention sweep rotates over (or the model's layers, if more). A decode step
 * reads each layer's KV once with every other layer's KV and all weights read in between, so it
 * comes from DRAM; at the calibration's batch and contexts 16 layers' KV is several times a
 * last-level cache, so the rotation reads from DRAM too. One layer timed again and again stays in
 * cache and read 1.5-1.9x faster on an AVX-512 EPYC (2 threads, batch 32, context 276: 0.31 ms a
 * layer against 0.40-0.45 in the rotation and in the engine).
 */
const ATTENTION_ROTATION = 16;

/**
 * Decode attention of one layer (kv write + paged attention) for `batch` sequences at each
 * context, with the model's head geometry and KV dtype, on the engine's block size, rotating over
 * layer caches as a decode step does (ATTENTION_ROTATION); KV bytes read per call against time.
 * The caches are written in full first: pages never written all map to the kernel's one zero page,
 * which reads from L1 (a sweep that skipped this read 57-70 GB/s on 2 threads where the engine's
 * cache reads at a third of that). Blocks are taken a round at a time across the sequences, as
 * decode growth leaves them, so no sequence's blocks lie back to back. Each timed rotation follows
 * `evict`, as in measureGemm.
 */
export function measureAttention(
  backend: KernelBackend,
  c: ModelConfig,
  kvDtype: DType,
  threads: number,
  batch: number,
  contexts: readonly number[],
  reps: number,
  evict: () => void = () => {},
): AttentionSweep {
  backend.setThreads(threads);
  const maxContext = Math.max(...contexts) + 1;
  const layers = Math.max(c.numLayers, ATTENTION_ROTATION);
  const kv = attentionCaches(backend, c, kvDtype, layers, batch, maxContext);
  const elemBytes = kvDtype === "f32" ? 4 : 2;
  const calls = decodeCalls(kv, c, batch);
  const points = contexts.map((context) => {
    reserveInterleaved(kv, batch, context + 1);
    calls.prepare(batch, context);
    const pass = () => {
      for (let l = 0; l < layers; l++) calls.run(l);
    };
    const seconds = timeMedian(reps, pass, evict) / layers;
    const bytes = batch * (context + 1) * 2 * c.numKvHeads * c.headDim * elemBytes;
    return { context, seconds, gbPerS: bytes / seconds / 1e9, bytes };
  });
  const line = fitLine(points.map((p) => ({ x: p.bytes, y: p.seconds })));
  const fixedS = Math.max(0, line.intercept);
  return {
    threads,
    batch,
    points: points.map(({ context, seconds, gbPerS }) => ({ context, seconds, gbPerS })),
    bandwidth: 1 / line.slope,
    fixedS,
    seqS: fixedS / batch,
  };
}

/**
 * A KV cache of `layers` layers for `seqs` sequences of up to `maxContext` tokens, on the engine's
 * block size, every element written: pages never written all map to the kernel's one zero page,
 * which reads from L1.
 */
function attentionCaches(
  backend: KernelBackend,
  c: ModelConfig,
  kvDtype: DType,
  layers: number,
  seqs: number,
  maxContext: number,
): KvAttention {
  const blockSize = DEFAULT_BLOCK_SIZE;
  const kv = new KvAttention(
    backend,
    {
      numLayers: layers,
      numHeads: c.numHeads,
      numKvHeads: c.numKvHeads,
      headDim: c.headDim,
      blockSize,
      kvDtype,
      maxContext,
      maxTokens: seqs,
      maxSeqs: seqs,
      slidingWindow: null,
    },
    seqs * Math.ceil(maxContext / blockSize),
  );
  const one = kvDtype === "bf16" ? f32ToBf16(0.01) : kvDtype === "f16" ? f32ToF16(0.01) : 0.01;
  for (const cache of kv.caches) {
    cache.k.fill(one);
    cache.v.fill(one);
  }
  return kv;
}

/**
 * Sequences 0..seqs-1 reserved `tokens` each, a block at a time across them as decode growth
 * leaves them, so no sequence's blocks lie back to back.
 */
function reserveInterleaved(kv: KvAttention, seqs: number, tokens: number): void {
  const blockSize = kv.geometry.blockSize;
  for (let s = 0; s < seqs; s++) kv.allocator.release(s);
  for (let end = blockSize; end < tokens + blockSize; end += blockSize)
    for (let s = 0; s < seqs; s++)
      if (!kv.allocator.reserve(s, Math.min(end, tokens)))
        throw new Error("attention sweep: KV does not fit");
}
