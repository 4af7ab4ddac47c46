/**
 * Replays a trace slice against an engine core at the slice's arrival times (the PD / Adrenaline
 * benchmark's measurement, shared with the calibration): output throughput over the run, TTFT
 * from arrival to first token, TPOT per request, and per-step samples of KV use and offloading.
 */
import type { GenerateRequest } from "../../src/engine/api.js";
import type { EngineCore } from "../../src/engine/engine-core.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import type { HybridAttentionService } from "../../src/pd/hybrid-attention.js";
import { benchPrompt } from "../disagg/bench-model.js";
import { PD_CONTEXT, type TraceRequest } from "./pd-setup.js";

export interface RunResult {
  mode: string;
  outputTokens: number;
  seconds: number;
  throughput: number;
  ttftMean: number;
  ttftP99: number;
  tpotMean: number;
  tpotP99: number;
  preemptions: number;
  prefillKvPeak: number;
  prefillKvMean: number;
  decodeKvMean: number;
  offloadRatioMean: number;
  offloadRatioPeak: number;
  /** Highest N/M right after an offloading decision (what the bound constrains). */
  offloadRatioAtDecisions: number;
  offloadBound: number;
  runningMean: number;
}

export const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
};
export const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/**
 * Prompts of the served context run through a fresh engine before the replay is timed, enough that
 * the KV they stream back goes round the prefill channel's 64 MiB ring (at the benchmark's shape a
 * 638-token prompt hands back 20 MiB of f32 K and V: 120 MiB for six under PD; Adrenaline keeps
 * some on the prefill instance) and the decode instance's KV is written. A running server has these
 * pages mapped; a fresh one maps them during its first prompt passes (measured: the first five
 * 256–511-token passes spent 28–64 ms writing their KV into the channel and the decode instance
 * 23–62 ms importing it, against 2 and 1.2 ms once the ring had been round), which the simulator,
 * predicting a server in its steady state, does not charge.
 */
const WARM_UP_REQUESTS = 6;

async function warmUp(core: EngineCore): Promise<void> {
  for (let i = 0; i < WARM_UP_REQUESTS; i++)
    core.add({
      id: `warm-up-${i}`,
      promptTokenIds: benchPrompt(PD_CONTEXT - 2, 1000 + i),
      params: resolveSamplingParams({ temperature: 0, maxTokens: 2, ignoreEos: true }),
    });
  while (core.hasWork) await core.runStep();
}

/**
 * Replays the trace slice against an engine core (after a warm-up; `onStart` runs when the timed
 * replay begins); per-step samples of KV and offloading.
 */
export async function replay(
  mode: string,
  core: EngineCore,
  attention: HybridAttentionService,
  trace: TraceRequest[],
  onStart: () => void = () => {},
): Promise<RunResult> {
  await warmUp(core);
  const preemptedBefore = core.stats().preemptions;
  // The highest N/M after a decision is reported for the replay's decisions, not the warm-up's.
  attention.maxRatioSeen = 0;
  onStart();
  const first = new Map<string, number>();
  const last = new Map<string, number>();
  const count = new Map<string, number>();
  const reqs: (GenerateRequest & { at: number })[] = trace.map((t, i) => ({
    at: t.at,
    id: `r${i}`,
    promptTokenIds: benchPrompt(t.prompt, i),
    params: resolveSamplingParams({ temperature: 0, maxTokens: t.output, ignoreEos: true }),
  }));
  const prefillKv: number[] = [];
  const decodeKv: number[] = [];
  const ratio: number[] = [];
  const running: number[] = [];
  let bound = 0;
  let next = 0;
  const start = performance.now();
  const now = () => (performance.now() - start) / 1000;
  const added = new Map<string, number>();
  while (next < reqs.length || core.hasWork) {
    while (next < reqs.length && reqs[next]!.at <= now()) {
      const r = reqs[next++]!;
      core.add(r);
      added.set(r.id, r.at);
    }
    if (!core.hasWork) {
      await new Promise((res) => setTimeout(res, Math.max(0, (reqs[next]!.at - now()) * 1000)));
      continue;
    }
    const events = await core.runStep();
    const t = now();
    for (const ev of events) {
      if (ev.tokenIds.length === 0) continue;
      if (!first.has(ev.requestId)) first.set(ev.requestId, t);
      last.set(ev.requestId, t);
      count.set(ev.requestId, (count.get(ev.requestId) ?? 0) + ev.tokenIds.length);
    }
    const s = core.stats();
    const dec = s.kv.find((k) => k.worker === "decode");
    const pre = s.kv.filter((k) => k.worker !== "decode");
    if (dec) decodeKv.push(dec.usedBlocks / dec.totalBlocks);
    if (pre.length) prefillKv.push(mean(pre.map((k) => k.usedBlocks / Math.max(1, k.totalBlocks))));
    if (s.offload) {
      ratio.push(s.offload.ratio);
      bound = s.offload.bound;
    }
    running.push(s.running);
  }
  const seconds = now();
  const ttft = reqs.map((r) => first.get(r.id)! - added.get(r.id)!);
  const tpot = reqs
    .filter((r) => (count.get(r.id) ?? 0) > 1)
    .map((r) => (last.get(r.id)! - first.get(r.id)!) / (count.get(r.id)! - 1));
  const outputTokens = [...count.values()].reduce((a, b) => a + b, 0);
  return {
    mode,
    outputTokens,
    seconds,
    throughput: outputTokens / seconds,
    ttftMean: mean(ttft),
    ttftP99: pct(ttft, 0.99),
    tpotMean: mean(tpot),
    tpotP99: pct(tpot, 0.99),
    preemptions: core.stats().preemptions - preemptedBefore,
    prefillKvPeak: Math.max(0, ...prefillKv),
    prefillKvMean: mean(prefillKv),
    decodeKvMean: mean(decodeKv),
    offloadRatioMean: mean(ratio),
    offloadRatioPeak: Math.max(0, ...ratio),
    offloadRatioAtDecisions: attention.maxRatioSeen,
    offloadBound: bound,
    runningMean: mean(running),
  };
}
