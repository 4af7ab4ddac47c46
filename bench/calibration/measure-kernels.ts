import { KvAttention } from "../../src/attention/kv-attention.js";
import { median } from "../../src/bench/stats.js";
import type { KernelBackend, PreparedWeight } from "../../src/kernels/backend.js";
import type { ModelConfig } from "../../src/model/config.js";
import { allocTensorData, type DType, f32ToBf16, f32ToF16 } from "../../src/model/tensor.js";
import { createModelStep } from "../../src/runtime/step.js";
import { fitGemm, fitLine } from "./fit.js";

/**
 * Kernel rates of this machine with the project's own kernels, on the shapes of the model the
 * engine will run: its linear layers (every layer's own weights, so they stream from DRAM as in a
 * decode step) and its decode attention over a paged KV cache.
 */

/** Median of `reps` timings of fn (s); one untimed warm-up. */
export function timeMedian(reps: number, fn: () => void): number {
  fn();
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    t.push((performance.now() - t0) / 1000);
  }
  return median(t);
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
 */
export function linearPass(
  backend: KernelBackend,
  c: ModelConfig,
  dtype: DType,
  maxBatch: number,
): { params: number; pass: (batch: number) => void } {
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
  return {
    params: all.reduce((s, [r, k]) => s + r * k, 0),
    pass: (batch) => {
      for (const w of weights) backend.matmul(out, x, w, batch);
    },
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

/**
 * A full pass of the model's matrix products at each batch: FLOP/s against batch, fit to the
 * simulator's roofline max(2·N·(B + h)/peak, bytes/bandwidth) (see fit.ts).
 */
export function measureGemm(
  backend: KernelBackend,
  c: ModelConfig,
  dtype: DType,
  threads: number,
  batches: readonly number[],
  reps: number,
): GemmSweep {
  backend.setThreads(threads);
  const { params, pass } = linearPass(backend, c, dtype, Math.max(...batches));
  const bytesPerParam = dtype === "f32" ? 4 : 2;
  pass(1);
  // Repetitions go round the whole sweep, so a change in machine load hits every batch alike.
  const times = batches.map(() => [] as number[]);
  for (let r = 0; r < reps; r++) {
    batches.forEach((batch, i) => {
      const t0 = performance.now();
      pass(batch);
      times[i]!.push((performance.now() - t0) / 1000);
    });
  }
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
  /** Intercept: fixed cost of one layer's attention call (s). */
  readonly fixedS: number;
}

/**
 * Layer caches the attention sweep rotates over (or the model's layers, if more). A decode step
 * reads each layer's KV once with every other layer's KV and all weights read in between, so it
 * comes from DRAM; at the calibration's batch and contexts (32 sequences, 128 tokens and up) 16
 * layers' KV is several times a last-level cache, so the rotation reads from DRAM too. One layer
 * timed again and again stays in cache and read 1.5-1.9x faster on an AVX-512 EPYC (2 threads,
 * batch 32, context 276: 0.31 ms a layer against 0.40-0.45 in the rotation and in the engine).
 */
const ATTENTION_ROTATION = 16;

/**
 * Decode attention of one layer (kv write + paged attention) for `batch` sequences at each
 * context, with the model's head geometry and KV dtype, rotating over layer caches as a decode
 * step does (ATTENTION_ROTATION); KV bytes read per call against time.
 */
export function measureAttention(
  backend: KernelBackend,
  c: ModelConfig,
  kvDtype: DType,
  threads: number,
  batch: number,
  contexts: readonly number[],
  reps: number,
): AttentionSweep {
  backend.setThreads(threads);
  const blockSize = 16;
  const maxContext = Math.max(...contexts) + 1;
  const blocksPerSeq = Math.ceil(maxContext / blockSize);
  const layers = Math.max(c.numLayers, ATTENTION_ROTATION);
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
      maxTokens: batch,
      maxSeqs: batch,
      slidingWindow: null,
    },
    batch * blocksPerSeq,
  );
  const elemBytes = kvDtype === "f32" ? 4 : 2;
  const q = new Float32Array(batch * c.numHeads * c.headDim).fill(0.1);
  const k = new Float32Array(batch * c.numKvHeads * c.headDim).fill(0.1);
  const out = new Float32Array(q.length);
  const step = createModelStep(batch, batch, 0);
  const points = contexts.map((context) => {
    for (let s = 0; s < batch; s++) {
      kv.allocator.release(s);
      if (!kv.allocator.reserve(s, context + 1)) throw new Error("measureAttention: KV does not fit");
      step.seqIds[s] = s;
      step.seqStart[s] = s;
      step.positions[s] = context;
    }
    step.seqStart[batch] = batch;
    step.nSeqs = batch;
    step.nTokens = batch;
    kv.prepare(step);
    const pass = () => {
      for (let l = 0; l < layers; l++) kv.run(l, step, q, k, k, out);
    };
    const seconds = timeMedian(reps, pass) / layers;
    const bytes = batch * (context + 1) * 2 * c.numKvHeads * c.headDim * elemBytes;
    return { context, seconds, gbPerS: bytes / seconds / 1e9, bytes };
  });
  const line = fitLine(points.map((p) => ({ x: p.bytes, y: p.seconds })));
  return {
    threads,
    batch,
    points: points.map(({ context, seconds, gbPerS }) => ({ context, seconds, gbPerS })),
    bandwidth: 1 / line.slope,
    fixedS: Math.max(0, line.intercept),
  };
}
