/**
 * Seeded fault injection against the real server: concurrent greedy streams through the HTTP API
 * while the attention workers (or prefill instances) behind the engine are killed (SIGKILL),
 * stopped (SIGSTOP, left stopped: the engine must notice the silence) or delayed (SIGSTOP, then
 * SIGCONT after a pause on either side of the liveness bound) at moments a seeded PRNG picks.
 * After each run the invariants are checked:
 *   - every request completes with the undisturbed greedy text (an in-process server's), or fails
 *     with an error that says what failed; none hangs (each stream has a bound);
 *   - the engine's KV usage (every worker's share) is back to zero, within a bound;
 *   - /health is truthful: any 503 says "unavailable" with a reason, 200 comes back within a
 *     bound, and a request sent then is served with its undisturbed text;
 *   - the server stops (app.close + engine.shutdown) within a bound, leaving no worker process.
 * Everything the harness stopped is continued, and killed if still there, on every path. A run
 * is reproduced by its seed and placement (see `describeRun`).
 */
import { readdirSync, readFileSync } from "node:fs";
import OpenAI from "openai";
import { createEngine } from "../../src/placement/create-engine.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { createServer } from "../../src/server/app.js";
import { SeededRandom } from "../../src/util/seeded-random.js";
import { kvUsed, type LiveServer, storiesModelPath } from "../server/helpers.js";
import { within } from "./processes.js";

export type FaultKind = "kill" | "stop" | "delay";
export const FAULT_KINDS: readonly FaultKind[] = ["kill", "stop", "delay"];

/** What a fault hits: a spawned attention worker or a spawned prefill instance (by command line). */
export type TargetKind = "attention-worker" | "prefill-main";

export interface Placement {
  readonly name: string;
  readonly options: EngineOptions;
  readonly target: TargetKind;
}

/** A stopped worker is declared lost this quickly (the default is 5 s). */
export const ATTENTION_TIMEOUT_MS = 500;

const COMMON: EngineOptions = {
  attentionTimeoutMs: ATTENTION_TIMEOUT_MS,
  kvMemory: 16 << 20,
};

export const PLACEMENTS: readonly Placement[] = [
  {
    name: "request/shm",
    options: { ...COMMON, attentionWorkers: 2, partition: "request", transport: "shm" },
    target: "attention-worker",
  },
  {
    name: "request/tcp",
    options: { ...COMMON, attentionWorkers: 2, partition: "request", transport: "tcp" },
    target: "attention-worker",
  },
  {
    name: "head/shm",
    options: { ...COMMON, attentionWorkers: 2, partition: "head", transport: "shm" },
    target: "attention-worker",
  },
  {
    name: "head/tcp",
    options: { ...COMMON, attentionWorkers: 2, partition: "head", transport: "tcp" },
    target: "attention-worker",
  },
  { name: "pd", options: { ...COMMON, mode: "pd", prefillInstances: 1 }, target: "prefill-main" },
];

export function placementNamed(name: string): Placement {
  const p = PLACEMENTS.find((x) => x.name === name);
  if (!p) throw new Error(`no placement ${name} (have ${PLACEMENTS.map((x) => x.name).join(", ")})`);
  return p;
}

/** The prompts streams draw from, each with its own length (ignore_eos: always exactly this many tokens). */
export const PROMPTS: readonly { readonly prompt: string; readonly maxTokens: number }[] = [
  { prompt: "Once upon a time", maxTokens: 120 },
  { prompt: "The little dog", maxTokens: 100 },
  { prompt: "Lily and Ben went to the park and", maxTokens: 80 },
  { prompt: "One day, a big bear", maxTokens: 60 },
  { prompt: "Tom had a red ball", maxTokens: 90 },
  { prompt: "The sun was hot and", maxTokens: 70 },
];

/** Faults fire within this fraction of the streams' tokens unless a plan says otherwise. */
export const DEFAULT_WINDOW = 0.8;

/** Streams arrive over this long (the first at once). */
const MAX_ARRIVAL_MS = 600;

/** The request /health's 200 is checked against: a short one, served in full. */
const PROBE = { prompt: PROMPTS[0]!.prompt, maxTokens: 8 };

export interface FaultSpec {
  readonly index: number;
  readonly kind: FaultKind;
  /** Fires once the streams together have received this many tokens (never, if they all end first)... */
  readonly afterTokens: number;
  /** ...and this much later. */
  readonly extraDelayMs: number;
  /** Which target, as a fraction of the live ones at that moment (sorted by pid). */
  readonly pick: number;
  /** delay: how long the target stays stopped (either side of the liveness bound). */
  readonly pauseMs: number;
}

export interface RunPlan {
  readonly seed: number;
  readonly placement: Placement;
  readonly kinds: readonly FaultKind[];
  /** The fraction of the streams' tokens within which the faults fire. */
  readonly window: number;
  /** Index into PROMPTS of each stream. */
  readonly streams: readonly number[];
  /** When each stream is sent, in ms after the first (so prefills go on during the faults). */
  readonly arrivals: readonly number[];
  readonly faults: readonly FaultSpec[];
}

export interface PlanShape {
  /** Concurrent streams. */
  readonly streams: number;
  /** Faults per run. */
  readonly faults: number;
  /** Kinds the faults are drawn from (default: all). */
  readonly kinds?: readonly FaultKind[];
  /**
   * Faults fire within this fraction of the streams' tokens (default 0.8); lower where the streams
   * are quick (PD decodes in-process) so that they fire before the streams end on a fast machine.
   */
  readonly window?: number;
}

/** Everything random about a run, drawn from its seed. */
export function planRun(seed: number, placement: Placement, shape: PlanShape): RunPlan {
  const { streams, faults } = shape;
  const kinds = shape.kinds ?? FAULT_KINDS;
  const window = shape.window ?? DEFAULT_WINDOW;
  const r = new SeededRandom(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r.next() * (hi - lo + 1));
  const picks = Array.from({ length: streams }, () => int(0, PROMPTS.length - 1));
  const arrivals = picks.map((_, i) => (i === 0 ? 0 : int(0, MAX_ARRIVAL_MS)));
  let total = 0;
  for (const p of picks) total += PROMPTS[p]!.maxTokens;
  const specs: FaultSpec[] = [];
  for (let i = 0; i < faults; i++) {
    specs.push({
      index: i,
      kind: kinds[int(0, kinds.length - 1)]!,
      afterTokens: int(1, Math.max(1, Math.floor(total * window))),
      extraDelayMs: int(0, 250),
      pick: r.next(),
      pauseMs: int(100, 1000),
    });
  }
  specs.sort((a, b) => a.afterTokens - b.afterTokens || a.index - b.index);
  return {
    seed,
    placement,
    kinds,
    window,
    streams: picks,
    arrivals,
    faults: specs.map((s, index) => ({ ...s, index })),
  };
}

// ---------------------------------------------------------------------------------------------
// Processes

interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly state: string;
  readonly cmd: string;
}

function procInfo(pid: number): ProcInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // pid (comm) state ppid ...: comm may hold spaces and parentheses; the last ')' ends it.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0").join(" ").trim();
    return { pid, ppid: Number(rest[1]), state: rest[0]!, cmd };
  } catch {
    return null; // gone
  }
}

/** Live (not zombie) child processes of this process whose command line names `kind`, by pid. */
export function childTargets(kind: TargetKind): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const p = procInfo(Number(name));
    if (p && p.ppid === process.pid && p.state !== "Z" && p.cmd.includes(kind)) out.push(p.pid);
  }
  return out.sort((a, b) => a - b);
}

/** Whether `pid` is still a live (not zombie) child of this process whose command line names `kind`. */
export function liveTarget(pid: number, kind: TargetKind): boolean {
  const p = procInfo(pid);
  return p !== null && p.ppid === process.pid && p.state !== "Z" && p.cmd.includes(kind);
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false; // ESRCH: gone
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The server

/**
 * startServer of test/server/helpers.ts, with the engine's log lines (workers lost, recoveries)
 * kept for the report.
 */
export async function startLoggedServer(options: EngineOptions, log: string[]): Promise<LiveServer> {
  const t0 = performance.now();
  const engine = await createEngine(options, (line) =>
    log.push(`${Math.round(performance.now() - t0)} ms ${line}`),
  );
  const app = createServer(engine);
  try {
    await app.listen({ host: "127.0.0.1", port: 0 });
  } catch (e) {
    await engine.shutdown({ force: true });
    throw e;
  }
  const address = app.server.address();
  if (!address || typeof address === "string") throw new Error("server did not bind a TCP port");
  const url = `http://127.0.0.1:${address.port}`;
  return {
    url,
    engine,
    app,
    client: new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0 }),
    async close() {
      const closing = app.close();
      app.server.closeAllConnections();
      await closing;
      await engine.shutdown({ force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Streams

export interface StreamResult {
  readonly stream: number;
  readonly prompt: number;
  text: string;
  /** Text chunks received (one per token here). */
  chunks: number;
  finishReason: string | null;
  /** The error event's or HTTP error's message, or what went wrong with the connection. */
  error: string | null;
  /** HTTP status of the response (0: none). */
  status: number;
  hung: boolean;
  ms: number;
}

/**
 * One streamed greedy completion, bounded by `hangMs` (then aborted and marked hung). Errors are
 * recorded, never thrown.
 */
export async function streamCompletion(
  url: string,
  model: string,
  req: { prompt: string; maxTokens: number },
  hangMs: number,
  onChunk: () => void = () => {},
  tag: { stream: number; prompt: number } = { stream: 0, prompt: 0 },
): Promise<StreamResult> {
  const res: StreamResult = {
    ...tag,
    text: "",
    chunks: 0,
    finishReason: null,
    error: null,
    status: 0,
    hung: false,
    ms: 0,
  };
  const t0 = performance.now();
  const controller = new AbortController();
  const timer = setTimeout(() => {
    res.hung = true;
    controller.abort();
  }, hangMs);
  try {
    const reply = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model,
        prompt: req.prompt,
        max_tokens: req.maxTokens,
        temperature: 0,
        stream: true,
        ignore_eos: true,
      }),
      signal: controller.signal,
    });
    res.status = reply.status;
    if (reply.status !== 200) {
      const body = await reply.text();
      try {
        res.error = (JSON.parse(body) as { error?: { message?: string } }).error?.message ?? body;
      } catch {
        res.error = body || `HTTP ${reply.status}`;
      }
      return res;
    }
    await readEvents(reply, res, onChunk);
  } catch (e) {
    if (!res.hung) res.error ??= `connection: ${(e as Error).message}`;
  } finally {
    clearTimeout(timer);
    res.ms = performance.now() - t0;
  }
  return res;
}

type Chunk = {
  choices?: { text?: string; finish_reason?: string | null }[];
  error?: { message?: string };
};

async function readEvents(reply: Response, res: StreamResult, onChunk: () => void): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  let done = false;
  for await (const bytes of reply.body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(bytes, { stream: true });
    let end = pending.indexOf("\n\n");
    while (end >= 0) {
      const event = pending.slice(0, end);
      pending = pending.slice(end + 2);
      end = pending.indexOf("\n\n");
      if (!event.startsWith("data: ")) continue;
      const data = event.slice(6);
      if (data === "[DONE]") {
        done = true;
        continue;
      }
      const c = JSON.parse(data) as Chunk;
      if (c.error) {
        res.error = c.error.message ?? JSON.stringify(c.error);
        continue;
      }
      const choice = c.choices?.[0];
      if (choice?.text) {
        res.text += choice.text;
        res.chunks++;
        onChunk();
      }
      if (choice?.finish_reason) res.finishReason = choice.finish_reason;
    }
  }
  if (!done && res.error === null) res.error = "connection: stream ended without [DONE]";
}

// ---------------------------------------------------------------------------------------------
// Baseline

/** Undisturbed greedy texts, by PROMPTS index, and the probe's. */
export interface Baseline {
  readonly texts: readonly string[];
  readonly probe: string;
}

/** The undisturbed run: every prompt streamed at once through an in-process server (attentionWorkers: 0). */
export async function undisturbedBaseline(hangMs = 30_000): Promise<Baseline> {
  const s = await startLoggedServer({ model: storiesModelPath(), attentionWorkers: 0 }, []);
  try {
    const id = s.engine.model.id;
    const all = await Promise.all(PROMPTS.map((p) => streamCompletion(s.url, id, p, hangMs)));
    const probe = await streamCompletion(s.url, id, PROBE, hangMs);
    for (const r of [...all, probe]) {
      if (r.error !== null || r.hung || r.finishReason !== "length")
        throw new Error(`the undisturbed run failed: ${JSON.stringify(r)}`);
    }
    return { texts: all.map((r) => r.text), probe: probe.text };
  } finally {
    await s.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Faults

export interface InjectedFault {
  readonly spec: FaultSpec;
  /** Tokens received when it fired, and ms since the streams started. */
  atTokens: number;
  atMs: number;
  /** The process it hit (null: none alive then, or never fired because the run ended first). */
  pid: number | null;
  note: string;
}

/** What the harness did to processes, so that finally can undo it. */
class FaultState {
  constructor(readonly target: TargetKind) {}

  /** Pids the harness SIGSTOPped and has not SIGCONTed. */
  readonly stopped = new Set<number>();
  /** Every pid it ever stopped (killed at the end if still there). */
  readonly everStopped = new Set<number>();
  /** Delays whose SIGCONT is still to come. */
  readonly delays: Promise<void>[] = [];
  readonly timers = new Set<NodeJS.Timeout>();

  stop(pid: number): boolean {
    if (!signal(pid, "SIGSTOP")) return false;
    this.stopped.add(pid);
    this.everStopped.add(pid);
    return true;
  }

  /** SIGCONT, if `pid` is still the process it stopped (and not a new one that got its number). */
  cont(pid: number): boolean {
    this.stopped.delete(pid);
    return liveTarget(pid, this.target) && signal(pid, "SIGCONT");
  }

  /**
   * Continues everything still stopped and cancels pending delays (so a stuck close can go on),
   * then kills whatever it ever stopped that is still there.
   */
  releaseAll(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.stopped.clear();
    for (const pid of this.everStopped) {
      if (!liveTarget(pid, this.target)) continue;
      signal(pid, "SIGCONT");
      signal(pid, "SIGKILL");
    }
  }
}

function inject(f: InjectedFault, state: FaultState): void {
  const target = state.target;
  // One the harness holds stopped is no target for a stop or a delay (it would change nothing),
  // but may be killed.
  const candidates = childTargets(target).filter((pid) => f.spec.kind === "kill" || !state.stopped.has(pid));
  if (candidates.length === 0) {
    f.note = `no live ${target}${f.spec.kind === "kill" ? "" : " that is not already stopped"}`;
    return;
  }
  const pid = candidates[Math.min(candidates.length - 1, Math.floor(f.spec.pick * candidates.length))]!;
  f.pid = pid;
  switch (f.spec.kind) {
    case "kill":
      f.note = signal(pid, "SIGKILL") ? "killed" : "gone before the signal";
      if (state.stopped.delete(pid)) f.note += " (it was stopped)";
      return;
    case "stop":
      f.note = state.stop(pid) ? "stopped (left stopped)" : "gone before the signal";
      return;
    case "delay": {
      if (!state.stop(pid)) {
        f.note = "gone before the signal";
        return;
      }
      f.note = `stopped for ${f.spec.pauseMs} ms`;
      state.delays.push(
        new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            state.timers.delete(t);
            if (!state.cont(pid)) f.note += ", gone before SIGCONT";
            else f.note += ", continued";
            resolve();
          }, f.spec.pauseMs);
          state.timers.add(t);
        }),
      );
    }
  }
}

/** Fires the plan's faults at their moments; resolves once every fault has fired or the streams ended. */
async function driveFaults(
  plan: RunPlan,
  progress: { tokens: number; ended: boolean; t0: number },
  state: FaultState,
  out: InjectedFault[],
): Promise<void> {
  for (const spec of plan.faults) {
    const f: InjectedFault = {
      spec,
      atTokens: -1,
      atMs: -1,
      pid: null,
      note: "not fired: the streams ended first",
    };
    out.push(f);
    while (progress.tokens < spec.afterTokens && !progress.ended) await sleep(2);
    if (progress.ended) continue;
    if (spec.extraDelayMs > 0) await sleep(spec.extraDelayMs);
    if (progress.ended) continue;
    f.atTokens = progress.tokens;
    f.atMs = Math.round(performance.now() - progress.t0);
    inject(f, state);
  }
}

// ---------------------------------------------------------------------------------------------
// A run and its invariants

export interface Bounds {
  /** A stream not finished within this is hung (aborted and counted). */
  readonly hangMs: number;
  /** KV usage must be back to zero within this once the streams have ended. */
  readonly kvMs: number;
  /** /health must answer 200 within this. */
  readonly healthMs: number;
  /** app.close() + engine.shutdown() within this. */
  readonly closeMs: number;
}

/**
 * The hang bound is past the engine's own recovery bound (RemoteAttentionService.recoverTimeoutMs,
 * 30 s), after which requests without attention capacity fail with "attention unavailable: …".
 */
export const DEFAULT_BOUNDS: Bounds = { hangMs: 35_000, kvMs: 5_000, healthMs: 10_000, closeMs: 10_000 };

export type Outcome = "identical" | "clear error" | "hung" | "wrong text" | "unclear error";

export interface RunReport {
  readonly plan: RunPlan;
  /** This run's place in its session: the seeds of the session's rounds, all on one server. */
  readonly round: number;
  readonly sessionSeeds: readonly number[];
  readonly faults: InjectedFault[];
  readonly streams: StreamResult[];
  readonly outcomes: Outcome[];
  /** KV blocks still in use once the bound passed (per worker, as the engine reports them). */
  kvLeaked: number;
  kvDetail: string;
  /** /health answers seen, in order (status and body), collapsed. */
  health: string[];
  healthOk: boolean;
  /** The probe after /health said 200. */
  probe: StreamResult | null;
  /** Whether this round ended its session, so that the server's stop was checked after it. */
  closedServer: boolean;
  /** How long the server took to stop (-1: not within the bound, or not after this round). */
  closeMs: number;
  /** Worker processes left after shutdown (killed by the harness). */
  leftProcesses: number[];
  violations: string[];
  /** The session's engine log (workers lost, recoveries), with ms since the engine started. */
  readonly log: string[];
  /** ms: the whole run, and its parts (start: the first round, close: the last). */
  ms: number;
  phases: { start: number; streams: number; checks: number; close: number };
}

function emptyReport(plan: RunPlan, round: number, sessionSeeds: number[], log: string[]): RunReport {
  return {
    plan,
    round,
    sessionSeeds,
    faults: [],
    streams: [],
    outcomes: [],
    kvLeaked: 0,
    kvDetail: "",
    health: [],
    healthOk: false,
    probe: null,
    closedServer: false,
    closeMs: -1,
    leftProcesses: [],
    violations: [],
    log,
    ms: 0,
    phases: { start: 0, streams: 0, checks: 0, close: 0 },
  };
}

/**
 * An error names what failed: the engine's recovery ("attention unavailable: …"), the worker or
 * prefill instance lost, an engine step, or readiness. A bare "generation failed", a reset
 * connection or a stream cut short say nothing.
 */
export const CLEAR_ERROR = /attention|prefill|worker|engine|recover/i;

export function classify(r: StreamResult, expected: string): Outcome {
  if (r.hung) return "hung";
  if (r.error !== null)
    return CLEAR_ERROR.test(r.error) && !r.error.startsWith("connection:") ? "clear error" : "unclear error";
  if (r.finishReason !== "length" || r.text !== expected) return "wrong text";
  return "identical";
}

/** One run on a server of its own: starts it, streams, injects the faults, checks every invariant, stops it. */
export async function runFaultRun(
  plan: RunPlan,
  baseline: Baseline,
  bounds: Bounds = DEFAULT_BOUNDS,
): Promise<RunReport> {
  return (await runFaultSession([plan], baseline, bounds))[0]!;
}

/**
 * Runs on one server, one after another (rounds): each streams and injects its plan's faults,
 * then checks KV and /health; after the last, the server must stop cleanly (counted against the
 * last round). Saves a server start per run where time is short. A round that breaks an invariant
 * ends the session (the server's state is then no base for the next). Every plan must share the
 * placement.
 */
export async function runFaultSession(
  plans: readonly RunPlan[],
  baseline: Baseline,
  bounds: Bounds = DEFAULT_BOUNDS,
): Promise<RunReport[]> {
  const placement = plans[0]!.placement;
  if (plans.some((p) => p.placement !== placement)) throw new Error("a session runs one placement");
  const seeds = plans.map((p) => p.seed);
  const log: string[] = [];
  const reports: RunReport[] = [];
  let current = emptyReport(plans[0]!, 0, seeds, log);
  let mark = performance.now();
  const lap = () => {
    const now = performance.now();
    const ms = Math.round(now - mark);
    mark = now;
    return ms;
  };
  const state = new FaultState(placement.target);
  let server: LiveServer | null = null;
  try {
    server = await startLoggedServer({ model: storiesModelPath(), ...placement.options }, log);
    current.phases.start = lap();
    for (const [i, plan] of plans.entries()) {
      if (i > 0) current = emptyReport(plan, i, seeds, log);
      reports.push(current);
      await runRound(server, plan, baseline, bounds, state, current, lap);
      if (current.violations.length > 0) break;
    }
    const s = server;
    server = null;
    current.closedServer = true;
    try {
      await within(s.close(), bounds.closeMs, "app.close() + engine.shutdown()");
      current.closeMs = Math.round(performance.now() - mark);
    } catch (e) {
      current.violations.push(`did not stop cleanly: ${(e as Error).message}`);
    }
    await checkNoProcessLeft(placement.target, current);
    current.phases.close = lap();
  } catch (e) {
    if (!reports.includes(current)) reports.push(current);
    current.closedServer = true; // by the finally below, past any bound
    current.violations.push(`harness: ${(e as Error).stack ?? e}`);
  } finally {
    state.releaseAll();
    if (server) await within(server.close(), bounds.closeMs, "close after a failure").catch(() => {});
    for (const pid of childTargets(placement.target)) signal(pid, "SIGKILL");
  }
  for (const r of reports) r.ms = r.phases.start + r.phases.streams + r.phases.checks + r.phases.close;
  return reports;
}

async function runRound(
  server: LiveServer,
  plan: RunPlan,
  baseline: Baseline,
  bounds: Bounds,
  state: FaultState,
  report: RunReport,
  lap: () => number,
): Promise<void> {
  await streamWithFaults(server, plan, baseline, bounds, state, report);
  // Delays end by themselves; a stop is the engine's to notice, not the harness's to undo.
  await Promise.all(state.delays.splice(0));
  report.phases.streams = lap();
  await checkKv(server, bounds, report);
  await checkHealth(server, baseline, bounds, report);
  report.phases.checks = lap();
}

async function streamWithFaults(
  server: LiveServer,
  plan: RunPlan,
  baseline: Baseline,
  bounds: Bounds,
  state: FaultState,
  report: RunReport,
): Promise<void> {
  const progress = { tokens: 0, ended: false, t0: performance.now() };
  const id = server.engine.model.id;
  const streams = plan.streams.map(async (p, i) => {
    await sleep(plan.arrivals[i]!);
    return streamCompletion(server.url, id, PROMPTS[p]!, bounds.hangMs, () => progress.tokens++, {
      stream: i,
      prompt: p,
    });
  });
  const driving = driveFaults(plan, progress, state, report.faults);
  const results = await Promise.all(streams);
  progress.ended = true;
  await driving;
  report.streams.push(...results);
  for (const r of results) {
    const o = classify(r, baseline.texts[r.prompt]!);
    report.outcomes.push(o);
    if (o === "identical" || o === "clear error") continue;
    const got =
      r.error ?? `${r.chunks} tokens, finish ${r.finishReason}, text ${JSON.stringify(r.text.slice(0, 80))}`;
    report.violations.push(
      `stream ${r.stream} (prompt ${r.prompt}): ${o} after ${Math.round(r.ms)} ms: ${got}`,
    );
  }
}

async function checkKv(server: LiveServer, bounds: Bounds, report: RunReport): Promise<void> {
  const until = performance.now() + bounds.kvMs;
  let used = kvUsed(server.engine);
  while (used > 0 && performance.now() < until) {
    await sleep(20);
    used = kvUsed(server.engine);
  }
  const stats = server.engine.stats();
  report.kvLeaked = used;
  report.kvDetail = stats.kv.map((k) => `${k.worker} ${k.usedBlocks}/${k.totalBlocks}`).join(", ");
  if (used > 0)
    report.violations.push(
      `KV not freed within ${bounds.kvMs} ms: ${report.kvDetail} (running ${stats.running}, waiting ${stats.waiting})`,
    );
}

/** Polls /health until 200 (any 503 must say why), then checks that 200 means it serves. */
async function checkHealth(server: LiveServer, baseline: Baseline, bounds: Bounds, report: RunReport) {
  const until = performance.now() + bounds.healthMs;
  for (;;) {
    const res = await fetch(`${server.url}/health`);
    const body = (await res.json()) as { status?: string; reason?: string };
    const seen = `${res.status} ${body.status}${body.reason ? `: ${body.reason}` : ""}`;
    if (report.health.at(-1) !== seen) report.health.push(seen);
    if (res.status === 200 && body.status === "ok") break;
    if (res.status !== 503 || body.status !== "unavailable" || !body.reason) {
      report.violations.push(`/health answered ${JSON.stringify({ status: res.status, body })}`);
      return;
    }
    if (performance.now() > until) {
      report.violations.push(`/health still 503 after ${bounds.healthMs} ms: ${body.reason}`);
      return;
    }
    await sleep(50);
  }
  const probe = await streamCompletion(server.url, server.engine.model.id, PROBE, bounds.hangMs);
  report.probe = probe;
  if (classify(probe, baseline.probe) !== "identical") {
    const what = probe.hung
      ? `hung (${probe.chunks} tokens in ${bounds.hangMs} ms)`
      : (probe.error ?? `${JSON.stringify(probe.text)}, finish ${probe.finishReason}`);
    report.violations.push(`/health said 200 but a request sent then was not served in full: ${what}`);
    return;
  }
  report.healthOk = true;
}

async function checkNoProcessLeft(target: TargetKind, report: RunReport): Promise<void> {
  const until = performance.now() + 5_000;
  let left = childTargets(target);
  while (left.length > 0 && performance.now() < until) {
    await sleep(50);
    left = childTargets(target);
  }
  report.leftProcesses = left;
  if (left.length > 0) report.violations.push(`${target} process(es) ${left.join(", ")} left after shutdown`);
}

/** The seed, the placement and the schedule of faults with what each did: enough to reproduce and read. */
export function describeRun(r: RunReport): string {
  const { plan } = r;
  const n = r.sessionSeeds.length;
  const shape =
    `--streams ${plan.streams.length} --faults ${plan.faults.length} --kinds ${plan.kinds.join(",")}` +
    (plan.window !== DEFAULT_WINDOW ? ` --window ${plan.window}` : "");
  const cmd = "node dist/bench/faults/fault-injection.js";
  const lines = [
    `seed ${plan.seed}, placement ${plan.placement.name} (${JSON.stringify(plan.placement.options)})` +
      (n > 1 ? `, round ${r.round + 1} of ${n} on one server (seeds ${r.sessionSeeds.join(", ")})` : ""),
    `streams (prompt index @ arrival ms): ${plan.streams.map((p, i) => `${p}@${plan.arrivals[i]}`).join(" ")}`,
    "faults:",
    ...r.faults.map((f) => {
      const s = f.spec;
      const when = f.atTokens >= 0 ? `at ${f.atTokens} tokens / ${f.atMs} ms,` : "";
      const what = s.kind === "delay" ? `delay ${s.pauseMs} ms` : s.kind;
      return `  #${s.index} ${what} ${plan.placement.target} (pick ${s.pick.toFixed(3)}) after ${s.afterTokens} tokens + ${s.extraDelayMs} ms: ${when} pid ${f.pid ?? "-"}: ${f.note}`;
    }),
    `outcomes: ${r.outcomes.join(", ")}`,
    `KV after: ${r.kvDetail || "-"}; /health: ${r.health.join(" → ") || "-"}; ` +
      (r.closedServer
        ? `stop: ${r.closeMs >= 0 ? `${r.closeMs} ms` : "not within the bound"}`
        : "server kept for the next round"),
    `reproduce: ${cmd} --placement ${plan.placement.name} --seed ${plan.seed} --runs 1 ${shape}` +
      (n > 1
        ? ` (this round on a server of its own; the session: --seed ${r.sessionSeeds[0]} --rounds ${n})`
        : ""),
  ];
  if (r.violations.length > 0) {
    lines.push("violations:", ...r.violations.map((v) => `  ${v}`));
    lines.push("engine log (last 30 lines):", ...r.log.slice(-30).map((l) => `  ${l}`));
  }
  return lines.join("\n");
}
