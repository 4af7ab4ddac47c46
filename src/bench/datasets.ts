import { readFileSync } from "node:fs";
import { BenchRng } from "./rng.js";

/** One request to replay: token lengths always, text when the dataset has real prompts. */
export interface BenchRequest {
  /** Real prompt text (ShareGPT); absent for length-only traces, whose prompts are synthesised. */
  readonly promptText?: string;
  /** Prompt length in tokens (for text prompts: unknown until the server tokenizes it, 0). */
  readonly promptLen: number;
  readonly outputLen: number;
  /** Arrival time in seconds from the trace's start, when the trace records one. */
  readonly timestamp?: number;
  /** Ids of the prompt's 512-token prefix blocks (Mooncake): equal ids are shared prefixes. */
  readonly prefixBlocks?: readonly number[];
  /** Leading tokens every request of the run shares (the random dataset's --random-prefix-len). */
  readonly sharedPrefixLen?: number;
}

export type DatasetName = "azure-conv" | "azure-code" | "mooncake" | "sharegpt" | "random";
export const DATASET_NAMES: readonly DatasetName[] = [
  "azure-conv",
  "azure-code",
  "mooncake",
  "sharegpt",
  "random",
];

/** Default files under the shared data directory, per dataset. */
export const DEFAULT_DATASET_FILES: Record<Exclude<DatasetName, "random">, string[]> = {
  "azure-conv": ["traces", "azure-2023", "AzureLLMInferenceTrace_conv.csv"],
  "azure-code": ["traces", "azure-2023", "AzureLLMInferenceTrace_code.csv"],
  mooncake: ["traces", "mooncake", "conversation_trace.jsonl"],
  sharegpt: ["prompts", "sharegpt", "ShareGPT_V3_filtered_1000.json"],
};

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`cannot read the ${what} dataset file ${path}: ${(err as Error).message}`);
  }
}

/**
 * Azure LLM inference trace 2023 CSV: `TIMESTAMP,ContextTokens,GeneratedTokens`, timestamps
 * like `2023-11-16 18:17:03.9799600` (UTC, 100 ns digits). Timestamps become seconds from the
 * first request.
 */
export function parseAzureCsv(text: string, source = "Azure CSV"): BenchRequest[] {
  const lines = text.split(/\r?\n/);
  const header = lines[0]?.trim().split(",") ?? [];
  const col = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`${source}: header lacks column ${name} (got ${header.join(",")})`);
    return i;
  };
  const ts = col("TIMESTAMP");
  const ctx = col("ContextTokens");
  const gen = col("GeneratedTokens");
  const out: BenchRequest[] = [];
  let t0: number | null = null;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    const f = line.split(",");
    const t = parseAzureTimestamp(f[ts] ?? "");
    const promptLen = Number(f[ctx]);
    const outputLen = Number(f[gen]);
    if (
      Number.isNaN(t) ||
      !Number.isInteger(promptLen) ||
      !Number.isInteger(outputLen) ||
      promptLen < 1 ||
      outputLen < 0
    ) {
      throw new Error(`${source}: line ${i + 1} is not 'timestamp,context_tokens,generated_tokens': ${line}`);
    }
    t0 ??= t;
    // A zero-length output cannot be streamed or timed; ask for one token.
    out.push({ promptLen, outputLen: Math.max(1, outputLen), timestamp: (t - t0) / 1000 });
  }
  return out;
}

/** Milliseconds since the epoch for `YYYY-MM-DD HH:MM:SS.fffffff` (treated as UTC). */
export function parseAzureTimestamp(s: string): number {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?$/.exec(s.trim());
  if (!m) return Number.NaN;
  const whole = Date.parse(`${m[1]}T${m[2]}Z`);
  const frac = m[3] ? Number(`0.${m[3]}`) * 1000 : 0;
  return whole + frac;
}

/** Mooncake JSONL: `{"timestamp": ms, "input_length": n, "output_length": n, "hash_ids": [...]}`. */
export function parseMooncakeJsonl(text: string, source = "Mooncake JSONL"): BenchRequest[] {
  const out: BenchRequest[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    let rec: { timestamp?: unknown; input_length?: unknown; output_length?: unknown; hash_ids?: unknown };
    try {
      rec = JSON.parse(line);
    } catch {
      throw new Error(`${source}: line ${i + 1} is not JSON`);
    }
    const { timestamp, input_length: inLen, output_length: outLen } = rec;
    if (
      typeof timestamp !== "number" ||
      !Number.isInteger(inLen) ||
      !Number.isInteger(outLen) ||
      (inLen as number) < 1
    ) {
      throw new Error(`${source}: line ${i + 1} lacks numeric timestamp, input_length, output_length`);
    }
    const blocks =
      Array.isArray(rec.hash_ids) && rec.hash_ids.every(Number.isInteger) ? (rec.hash_ids as number[]) : null;
    out.push({
      promptLen: inLen as number,
      outputLen: Math.max(1, outLen as number),
      timestamp: timestamp / 1000,
      ...(blocks ? { prefixBlocks: blocks } : {}),
    });
  }
  return out;
}

/**
 * ShareGPT JSON: `[{id, conversations: [{from: "human", value}]}]`. The first human turn is
 * the prompt. The files carry no replies, so every request asks for `outputLen` tokens.
 */
export function parseShareGpt(text: string, outputLen: number, source = "ShareGPT JSON"): BenchRequest[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error(`${source}: not valid JSON`);
  }
  if (!Array.isArray(data)) throw new Error(`${source}: expected a JSON array of conversations`);
  const out: BenchRequest[] = [];
  for (const item of data) {
    const turns = (item as { conversations?: unknown })?.conversations;
    if (!Array.isArray(turns)) continue;
    const first = turns.find((t) => (t as { from?: unknown })?.from === "human") as
      | { value?: unknown }
      | undefined;
    if (typeof first?.value !== "string" || first.value.length === 0) continue;
    out.push({ promptText: first.value, promptLen: 0, outputLen });
  }
  if (out.length === 0) throw new Error(`${source}: no conversation with a human turn`);
  return out;
}

export interface RandomDatasetOptions {
  readonly inputLen: number;
  readonly outputLen: number;
  /** Lengths are drawn uniformly from [len·(1−r), len·(1+r)]. */
  readonly rangeRatio: number;
  /** Tokens every prompt starts with (a system prompt's worth: prefix caching's case), before its own. */
  readonly prefixLen?: number;
}

export function randomDataset(count: number, o: RandomDatasetOptions, rng: BenchRng): BenchRequest[] {
  const draw = (len: number) =>
    Math.max(1, rng.int(Math.floor(len * (1 - o.rangeRatio)), Math.ceil(len * (1 + o.rangeRatio))));
  const shared = o.prefixLen ?? 0;
  return Array.from({ length: count }, () => ({
    promptLen: shared + draw(o.inputLen),
    outputLen: draw(o.outputLen),
    ...(shared > 0 ? { sharedPrefixLen: shared } : {}),
  }));
}

export interface LoadOptions {
  readonly path?: string;
  readonly numPrompts: number;
  readonly outputLen: number;
  readonly random: RandomDatasetOptions;
  readonly seed: number;
}

/**
 * Loads a dataset and picks `numPrompts` requests: traces keep their order (their timestamps
 * matter) and wrap around if short; ShareGPT prompts are shuffled by the seed.
 */
export function loadDataset(name: DatasetName, o: LoadOptions): BenchRequest[] {
  const rng = new BenchRng(o.seed);
  if (name === "random") return randomDataset(o.numPrompts, o.random, rng);
  if (!o.path) throw new Error(`dataset ${name} needs --dataset-path`);
  const text = readText(o.path, name);
  let all: BenchRequest[];
  if (name === "azure-conv" || name === "azure-code") all = parseAzureCsv(text, o.path);
  else if (name === "mooncake") all = parseMooncakeJsonl(text, o.path);
  else {
    all = parseShareGpt(text, o.outputLen, o.path);
    for (let i = all.length - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
  }
  if (all.length === 0) throw new Error(`${o.path}: no requests`);
  return takeWrapping(all, o.numPrompts);
}

/** The first n requests; a short trace repeats, its timestamps shifted past the previous lap. */
export function takeWrapping(all: readonly BenchRequest[], n: number): BenchRequest[] {
  const out: BenchRequest[] = [];
  const span = (all[all.length - 1]!.timestamp ?? 0) + 1;
  for (let i = 0; i < n; i++) {
    const r = all[i % all.length]!;
    const lap = Math.floor(i / all.length);
    out.push(lap === 0 || r.timestamp === undefined ? r : { ...r, timestamp: r.timestamp + lap * span });
  }
  return out;
}

/**
 * Fits a request into a context of `maxContext` tokens: the output keeps its length up to half
 * the context, and the prompt is cut to what remains.
 */
export function clampToContext(r: BenchRequest, maxContext: number): BenchRequest {
  if (r.promptLen + r.outputLen <= maxContext) return r;
  const outputLen = Math.max(1, Math.min(r.outputLen, Math.floor(maxContext / 2)));
  const promptLen = Math.max(1, Math.min(r.promptLen, maxContext - outputLen));
  return { ...r, promptLen, outputLen };
}
