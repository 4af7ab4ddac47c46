import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { median } from "../../src/bench/stats.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import type { KernelBackend } from "../../src/kernels/backend.js";
import type { LoadedModel } from "../../src/model/types.js";
import { createShmChannel, type Message, RpcClient } from "../../src/transport/index.js";
import { calibrationPrompt } from "./calib-model.js";
import { buildCalibrationCore, type CalibrationRequest, type Placement } from "./decode-run.js";
import { fitLine } from "./fit.js";

/**
 * The engine's own costs that are not kernel time, measured on a skeleton model (the real layer
 * count, tiny widths): what a step costs per layer and per running sequence, and what a layer's
 * round trip to an attention worker adds.
 */
export interface EngineOverheads {
  /** Colocated decode step of the skeleton at batch 1, divided by the layers (s). */
  readonly layerOverheadS: number;
  /** Extra step time per running sequence (sampling, detokenization, scheduling, events) (s). */
  readonly tokenOverheadS: number;
  /** One-way latency of a model↔attention-worker message over shm: (disaggregated − 2 × colocated) / (2L). */
  readonly transportLatencyS: number;
  readonly samples: { placement: Placement; batch: number; stepSeconds: number }[];
}

/** Median decode step time of `batch` identical requests (after their prefill). */
async function medianDecodeStep(
  model: LoadedModel,
  backend: KernelBackend,
  placement: Placement,
  batch: number,
  steps: number,
): Promise<number> {
  const requests: CalibrationRequest[] = Array.from({ length: batch }, () => ({
    prompt: 8,
    output: steps + 2,
  }));
  const { core, close } = await buildCalibrationCore(model, backend, placement, {
    maxRunning: batch,
    maxTokensPerStep: 256,
  });
  try {
    requests.forEach((r, i) => {
      core.add({
        id: `s${i}`,
        promptTokenIds: calibrationPrompt(r.prompt, i),
        params: resolveSamplingParams({ temperature: 0, maxTokens: r.output, ignoreEos: true }),
      });
    });
    await core.runStep(); // prefill
    const times: number[] = [];
    while (core.hasWork) {
      const t0 = performance.now();
      await core.runStep();
      times.push((performance.now() - t0) / 1000);
    }
    return median(times.slice(1, -1));
  } finally {
    await close();
  }
}

export async function measureEngineOverheads(
  skeleton: LoadedModel,
  backend: KernelBackend,
  threads: { colocated: number; disaggregated: number },
  o: { batches: readonly number[]; steps: number; rounds: number },
): Promise<EngineOverheads> {
  const samples: EngineOverheads["samples"] = [];
  const col = new Map<number, number[]>();
  const dis: number[] = [];
  // Alternate placements round by round so a change in machine load hits both alike.
  for (let r = 0; r < o.rounds; r++) {
    backend.setThreads(threads.colocated);
    for (const b of o.batches) {
      const t = await medianDecodeStep(skeleton, backend, "colocated", b, o.steps);
      col.set(b, [...(col.get(b) ?? []), t]);
      samples.push({ placement: "colocated", batch: b, stepSeconds: t });
    }
    backend.setThreads(threads.disaggregated);
    const t = await medianDecodeStep(skeleton, backend, "disaggregated", 1, o.steps);
    dis.push(t);
    samples.push({ placement: "disaggregated", batch: 1, stepSeconds: t });
  }
  const L = skeleton.config.numLayers;
  const pts = o.batches.map((b) => ({ x: b, y: median(col.get(b)!) }));
  const line = fitLine(pts);
  const at1 = line.intercept + line.slope;
  const layerOverheadS = at1 / L;
  return {
    layerOverheadS,
    tokenOverheadS: Math.max(0, line.slope),
    transportLatencyS: Math.max(0, (median(dis) - 2 * at1) / (2 * L)),
    samples,
  };
}

/** Windows the message latency is measured in (see measureShmLink). */
const LATENCY_WINDOWS = 5;

/**
 * The shared-memory message link as a per-layer exchange uses it, the far end on another thread
 * with its own event loop (echo-worker.ts): bytes per second from the difference between a large
 * and a small message's round trip (fixed per-message costs cancel), and the one-way latency of a
 * message when both ends have gone idle, as they do between a decode instance's layers: the
 * requester computes `gapMicros` before each request and the far end `holdMicros` before each
 * reply, longer than either end spins before it sleeps, so every message pays a wake-up.
 * Latency = (round trip − hold) / 2. PD's prefill instances exchange per layer over this link.
 */
export async function measureShmLink(
  bytes: number,
  reps: number,
  exchange: { gapMicros: number; holdMicros: number } = { gapMicros: 500, holdMicros: 300 },
): Promise<{ bandwidth: number; messageLatencyS: number }> {
  const capacityBytes = 2 ** Math.ceil(Math.log2(4 * bytes + (1 << 16)));
  const echo = async (holdMicros: number) => {
    const a = createShmChannel({ capacityBytes });
    const worker = new Worker(new URL("./echo-worker.js", import.meta.url), {
      workerData: { name: a.name, holdMicros },
    });
    await once(worker, "message");
    return { a, worker, rpc: new RpcClient(a) };
  };
  const rtt = async (rpc: RpcClient, floats: number, gapMicros: number): Promise<number> => {
    const msg: Message = {
      type: 1,
      ints: [],
      tensors: [{ dtype: "f32", shape: [floats], data: new Float32Array(floats).fill(1) }],
    };
    for (let i = 0; i < 3; i++) await rpc.request(msg, () => 0);
    const t: number[] = [];
    for (let i = 0; i < reps; i++) {
      const end = performance.now() + gapMicros / 1000;
      while (performance.now() < end) {}
      const t0 = performance.now();
      await rpc.request(msg, () => 0);
      t.push((performance.now() - t0) / 1000);
    }
    return median(t);
  };
  const close = async (e: Awaited<ReturnType<typeof echo>>) => {
    e.worker.postMessage("close");
    await once(e.worker, "message");
    await e.a.close();
    await e.worker.terminate();
  };
  const quick = await echo(0);
  let bandwidth: number;
  try {
    const small = await rtt(quick.rpc, 16, 0);
    const large = await rtt(quick.rpc, bytes / 4, 0);
    bandwidth = (2 * (bytes - 64)) / Math.max(1e-9, large - small);
  } finally {
    await close(quick);
  }
  // The median of LATENCY_WINDOWS windows, each on a fresh channel and thread: one window's median
  // read 1.6 ms one way where the windows around it read 0.18-0.26 ms (a burst of the host's other
  // work covered it), and PD's and Adrenaline's predictions follow this latency closely. With three
  // windows one profile of four still read 0.88 ms (the others 0.18-0.24), which took Adrenaline's
  // predicted throughput from +5% to -15% and -19% in the two rounds it was averaged into while the
  // engine's measured throughput did not move (AMD EPYC, 2026-12-07): five windows.
  const windows: number[] = [];
  for (let w = 0; w < LATENCY_WINDOWS; w++) {
    const held = await echo(exchange.holdMicros);
    try {
      windows.push(await rtt(held.rpc, 16, exchange.gapMicros));
    } finally {
      await close(held);
    }
  }
  return { bandwidth, messageLatencyS: Math.max(0, median(windows) - exchange.holdMicros / 1e6) / 2 };
}
