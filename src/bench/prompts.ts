import { authHeaders, type CompletionJob, type ServerTarget } from "./client.js";
import type { BenchRequest } from "./datasets.js";
import { BenchRng } from "./rng.js";

/** What /v1/models says about the served model. */
export interface ServedModel {
  readonly id: string;
  readonly maxModelLen: number | null;
}

async function getJson(url: string, apiKey: string | undefined, body?: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: body === undefined ? "GET" : "POST",
      headers: { "content-type": "application/json", ...authHeaders(apiKey) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new Error(`cannot reach ${url}: ${(err as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) throw new Error(`${url} answered HTTP ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

export async function fetchServedModel(baseUrl: string, apiKey?: string): Promise<ServedModel> {
  const list = (await getJson(`${baseUrl}/v1/models`, apiKey)) as {
    data?: { id?: string; max_model_len?: number }[];
  };
  const first = list.data?.[0];
  if (!first?.id) throw new Error(`${baseUrl}/v1/models lists no model`);
  return { id: first.id, maxModelLen: typeof first.max_model_len === "number" ? first.max_model_len : null };
}

async function tokenize(target: ServerTarget, text: string, addSpecialTokens: boolean): Promise<number[]> {
  const r = (await getJson(`${target.baseUrl}/tokenize`, target.apiKey, {
    model: target.model,
    prompt: text,
    add_special_tokens: addSpecialTokens,
  })) as { tokens?: number[] };
  if (!Array.isArray(r.tokens))
    throw new Error(
      `${target.baseUrl}/tokenize returned no tokens (the server needs the /tokenize extension)`,
    );
  return r.tokens;
}

const WORDS = (
  "the a of and to in is it that was for on are with as his they be at one have this from by hot word but what " +
  "some we can out other were all there when up use your how said an each she which do their time if will way " +
  "about many then them write would like so these her long make thing see him two has look more day could go come"
).split(" ");

/**
 * Builds prompts of exact token lengths in the server's own tokens: one /tokenize call turns
 * seeded filler text into a token pool, and each request takes a different window of it (so
 * no two prompts share a prefix by accident), led by the tokenizer's special prefix (BOS).
 * Prompts with real text (ShareGPT) are tokenized to learn their length and cut, as token ids,
 * only when they must be shortened to fit the context.
 */
export async function buildJobs(
  target: ServerTarget,
  requests: readonly BenchRequest[],
  fit: (r: BenchRequest) => BenchRequest,
  seed: number,
): Promise<CompletionJob[]> {
  const rng = new BenchRng(seed ^ 0x70a1);
  const needPool = requests.some((r) => r.promptText === undefined);
  let pool: number[] = [];
  let prefix: number[] = [];
  if (needPool) {
    const words: string[] = [];
    for (let i = 0; i < 6000; i++) words.push(WORDS[rng.int(0, WORDS.length - 1)]!);
    pool = await tokenize(target, words.join(" "), false);
    prefix = await tokenize(target, "", true);
    if (pool.length < 16)
      throw new Error("the server's tokenizer turned the filler text into too few tokens");
  }
  const jobs: CompletionJob[] = [];
  for (let i = 0; i < requests.length; i++) {
    const raw = requests[i]!;
    if (raw.promptText !== undefined) {
      const ids = await tokenize(target, raw.promptText, true);
      const r = fit({ ...raw, promptLen: ids.length });
      jobs.push({
        prompt: r.promptLen < ids.length ? ids.slice(0, r.promptLen) : raw.promptText,
        promptLen: r.promptLen,
        maxTokens: r.outputLen,
      });
      continue;
    }
    const r = fit(raw);
    const ids = synthesizePrompt(pool, prefix, r.promptLen, raw, i * 7919 + rng.int(0, pool.length - 1));
    jobs.push({ prompt: ids, promptLen: r.promptLen, maxTokens: r.outputLen });
  }
  return jobs;
}

/** Where in the pool the prefix every request shares is read (--random-prefix-len). */
const SHARED_PREFIX_START = 0x5eed;

/** Mooncake's prefix blocks are 512 tokens long. */
export const TRACE_BLOCK_TOKENS = 512;

/**
 * A prompt of exactly `length` token ids: the tokenizer's special prefix, then filler from the
 * pool. A trace that records prefix blocks (Mooncake's hash ids) gets one fixed window of the
 * pool per block id, so requests that share blocks in the trace share those tokens here too;
 * when the prompt was clamped, blocks shrink in proportion so the sharing structure survives.
 * A run's shared prefix (`sharedPrefixLen`) comes first, the same window for every request. The
 * rest comes from the window at `start`, different for every request.
 */
export function synthesizePrompt(
  pool: readonly number[],
  prefix: readonly number[],
  length: number,
  raw: BenchRequest,
  start: number,
): number[] {
  const ids = prefix.slice(0, Math.min(prefix.length, length - 1));
  const take = (from: number, count: number) => {
    for (let k = 0; k < count && ids.length < length; k++) ids.push(pool[(from + k) % pool.length]!);
  };
  // One fixed window for the prefix every request shares, wherever the run asks for one.
  if (raw.sharedPrefixLen) take(SHARED_PREFIX_START, Math.min(raw.sharedPrefixLen, length) - ids.length);
  if (raw.prefixBlocks && raw.promptLen > 0) {
    const blockLen = Math.max(1, Math.round((TRACE_BLOCK_TOKENS * length) / raw.promptLen));
    for (const block of raw.prefixBlocks) {
      if (ids.length >= length) break;
      // A fixed, well-spread window per block id (Knuth's multiplicative hash).
      take(Math.imul(block + 1, 2654435761) >>> 0, blockLen);
    }
  }
  take(start, length - ids.length);
  return ids;
}
