import { existsSync, readFileSync } from "node:fs";
import { SeededRandom } from "../util/seeded-random.js";
import { sharedDataPath } from "../util/shared-data.js";

/**
 * A request trace held column-wise (typed arrays: 20k requests cost nothing to copy or scan).
 * Arrival times are in seconds from the first request, sorted ascending.
 */
export interface Trace {
  readonly name: string;
  readonly arrival: Float64Array;
  readonly prompt: Int32Array;
  readonly output: Int32Array;
  /** Which prompts share leading blocks (Mooncake's hash ids), where the trace records it. */
  readonly prefix?: PrefixBlocks;
}

/**
 * A trace's prefix blocks: request i's prompt is blocks ids[start[i]] .. ids[start[i + 1] − 1] of
 * `blockTokens` tokens each (its last one partly filled); equal ids at the same place mean equal
 * tokens up to that block's end, so their KV can be shared (prefix caching).
 */
export interface PrefixBlocks {
  readonly blockTokens: number;
  readonly start: Int32Array;
  readonly ids: Int32Array;
}

/** Tokens of one of Mooncake's hash-id blocks (its README). */
export const MOONCAKE_BLOCK_TOKENS = 512;

export const NAMED_TRACES: Readonly<Record<string, readonly string[]>> = {
  "azure-conv": ["traces", "azure-2023", "AzureLLMInferenceTrace_conv.csv"],
  "azure-code": ["traces", "azure-2023", "AzureLLMInferenceTrace_code.csv"],
  "kimi-conv": ["traces", "mooncake", "conversation_trace.jsonl"],
};

interface Row {
  t: number;
  p: number;
  o: number;
  /** Prefix block ids (Mooncake's hash_ids), where recorded. */
  h?: readonly number[];
}

/** The rows' prefix blocks in their (sorted) order, or undefined when no row records any. */
function prefixOf(rows: readonly Row[], blockTokens: number): PrefixBlocks | undefined {
  if (!rows.some((r) => r.h !== undefined)) return undefined;
  const start = new Int32Array(rows.length + 1);
  for (let i = 0; i < rows.length; i++) start[i + 1] = start[i]! + (rows[i]!.h?.length ?? 0);
  const ids = new Int32Array(start[rows.length]!);
  for (let i = 0; i < rows.length; i++) ids.set(rows[i]!.h ?? [], start[i]!);
  return { blockTokens, start, ids };
}

function fromRows(name: string, rows: Row[], blockTokens = MOONCAKE_BLOCK_TOKENS): Trace {
  if (rows.length === 0) throw new Error(`trace ${name}: no requests`);
  rows.sort((a, b) => a.t - b.t);
  const t0 = rows[0]!.t;
  const n = rows.length;
  const arrival = new Float64Array(n);
  const prompt = new Int32Array(n);
  const output = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rows[i]!;
    arrival[i] = r.t - t0;
    prompt[i] = Math.max(1, r.p);
    // A request yields at least one token (a zero-output row still costs a prefill and a first token).
    output[i] = Math.max(1, r.o);
  }
  const prefix = prefixOf(rows, blockTokens);
  return prefix ? { name, arrival, prompt, output, prefix } : { name, arrival, prompt, output };
}

/** "2023-11-16 18:17:03.9799600" → seconds since the epoch (UTC; only differences matter). */
function parseAzureTimestamp(s: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d+)?/.exec(s.trim());
  if (!m) return Number.NaN;
  const base = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) / 1000;
  return base + (m[7] ? Number.parseFloat(m[7]) : 0);
}

/** Azure LLM inference trace CSV: TIMESTAMP, ContextTokens, GeneratedTokens (header required, any column order). */
export function parseAzureCsv(text: string, name: string): Trace {
  const lines = text.split(/\r?\n/);
  const header = (lines[0] ?? "").split(",").map((h) => h.trim().toLowerCase());
  const ti = header.indexOf("timestamp");
  const ci = header.indexOf("contexttokens");
  const gi = header.indexOf("generatedtokens");
  if (ti < 0 || ci < 0 || gi < 0) {
    throw new Error(
      `trace ${name}: CSV header must have TIMESTAMP, ContextTokens, GeneratedTokens (got "${lines[0]}")`,
    );
  }
  const rows: Row[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === "") continue;
    const f = line.split(",");
    const t = parseAzureTimestamp(f[ti] ?? "");
    const p = Number(f[ci]);
    const o = Number(f[gi]);
    if (!Number.isFinite(t) || !Number.isInteger(p) || !Number.isInteger(o) || p < 0 || o < 0) {
      throw new Error(`trace ${name}: bad row at line ${i + 1}: "${line}"`);
    }
    rows.push({ t, p, o });
  }
  return fromRows(name, rows);
}

/**
 * Mooncake JSONL: {"timestamp": ms, "input_length": n, "output_length": n, "hash_ids": [...]} per
 * line (hash_ids optional: the prompt's 512-token blocks, equal ids for shared prefixes).
 */
export function parseMooncakeJsonl(text: string, name: string): Trace {
  const rows: Row[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`trace ${name}: line ${i + 1} is not JSON`);
    }
    const t = o.timestamp;
    const p = o.input_length;
    const out = o.output_length;
    if (typeof t !== "number" || typeof p !== "number" || typeof out !== "number" || p < 0 || out < 0) {
      throw new Error(`trace ${name}: line ${i + 1} needs numeric timestamp, input_length, output_length`);
    }
    const h = o.hash_ids;
    if (
      h !== undefined &&
      !(Array.isArray(h) && h.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 31))
    )
      throw new Error(`trace ${name}: line ${i + 1}: hash_ids must be a list of non-negative integers`);
    rows.push({ t: t / 1000, p: Math.round(p), o: Math.round(out), ...(h ? { h: h as number[] } : {}) });
  }
  return fromRows(name, rows);
}

/** A named trace (azure-conv, azure-code, kimi-conv) or a file path (.csv Azure format, .jsonl Mooncake format). */
export function loadTrace(nameOrPath: string): Trace {
  const parts = NAMED_TRACES[nameOrPath.toLowerCase()];
  const file = parts ? sharedDataPath(...parts) : nameOrPath;
  if (!existsSync(file)) {
    throw new Error(
      `trace "${nameOrPath}" not found (use ${Object.keys(NAMED_TRACES).join(", ")} or a file path)`,
    );
  }
  const text = readFileSync(file, "utf8");
  const name = parts ? nameOrPath.toLowerCase() : file;
  if (file.endsWith(".jsonl") || text.trimStart().startsWith("{")) return parseMooncakeJsonl(text, name);
  return parseAzureCsv(text, name);
}

/** Deterministic PRNG (mulberry32) so synthetic traces and sampling are reproducible for a seed. */
export function rng(seed: number): () => number {
  const r = new SeededRandom(seed);
  return () => r.next();
}

export interface SyntheticOptions {
  readonly requests: number;
  /** Poisson arrival rate, requests/s (Infinity: all at t = 0). */
  readonly rate: number;
  readonly meanPrompt: number;
  readonly meanOutput: number;
  /** Log-normal sigma of the lengths (0: fixed lengths). */
  readonly sigma: number;
  readonly seed: number;
  readonly maxLength?: number;
}

/** Poisson arrivals with log-normal prompt/output lengths of the given means. */
export function syntheticTrace(o: SyntheticOptions): Trace {
  if (!(o.requests > 0) || !Number.isInteger(o.requests))
    throw new Error("synthetic trace: requests must be a positive integer");
  if (!(o.rate > 0)) throw new Error("synthetic trace: rate must be > 0");
  const r = rng(o.seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const logNormal = (mean: number) =>
    o.sigma === 0 ? mean : Math.exp(Math.log(mean) - (o.sigma * o.sigma) / 2 + o.sigma * normal());
  const cap = o.maxLength ?? 32768;
  const arrival = new Float64Array(o.requests);
  const prompt = new Int32Array(o.requests);
  const output = new Int32Array(o.requests);
  let t = 0;
  for (let i = 0; i < o.requests; i++) {
    if (Number.isFinite(o.rate)) t += -Math.log(1 - r()) / o.rate;
    arrival[i] = t;
    prompt[i] = Math.min(cap, Math.max(1, Math.round(logNormal(o.meanPrompt))));
    output[i] = Math.min(cap, Math.max(1, Math.round(logNormal(o.meanOutput))));
  }
  return {
    name: `synthetic(${o.requests} req, ${o.rate}/s, ${o.meanPrompt}/${o.meanOutput})`,
    arrival,
    prompt,
    output,
  };
}

/** ShareGPT-like traffic as used by Adrenaline (mean prompt ≈ 300, mean output ≈ 250 tokens). */
export function shareGptLike(requests: number, rate: number, seed = 1): Trace {
  return syntheticTrace({
    requests,
    rate,
    meanPrompt: 300,
    meanOutput: 250,
    sigma: 0.9,
    seed,
    maxLength: 4096,
  });
}

/** How requests arrive in a run: at their trace times (scaled), or all at once (saturation, measuring capacity). */
export type ArrivalMode = { kind: "trace"; rateScale: number } | { kind: "saturate" };

/** Applies an arrival mode and an optional first-N cut, returning a new trace. */
export function shapeTrace(t: Trace, mode: ArrivalMode, maxRequests?: number): Trace {
  const n = Math.min(t.arrival.length, maxRequests ?? Number.POSITIVE_INFINITY);
  const arrival = new Float64Array(n);
  if (mode.kind === "trace") {
    if (!(mode.rateScale > 0)) throw new Error("rate scale must be > 0");
    for (let i = 0; i < n; i++) arrival[i] = t.arrival[i]! / mode.rateScale;
  }
  const shaped = { name: t.name, arrival, prompt: t.prompt.slice(0, n), output: t.output.slice(0, n) };
  if (!t.prefix) return shaped;
  const { blockTokens, start, ids } = t.prefix;
  return { ...shaped, prefix: { blockTokens, start: start.slice(0, n + 1), ids: ids.slice(0, start[n]!) } };
}

export interface TraceStats {
  requests: number;
  meanPrompt: number;
  meanOutput: number;
  durationS: number;
}

export function traceStats(t: Trace): TraceStats {
  let p = 0;
  let o = 0;
  const n = t.arrival.length;
  for (let i = 0; i < n; i++) {
    p += t.prompt[i]!;
    o += t.output[i]!;
  }
  return { requests: n, meanPrompt: p / n, meanOutput: o / n, durationS: n ? t.arrival[n - 1]! : 0 };
}
