import type { RequestOutcome } from "./metrics.js";

/** What to send for one benchmark request. */
export interface CompletionJob {
  /** Text or exact token ids (length-controlled synthetic prompts). */
  readonly prompt: string | readonly number[];
  readonly promptLen: number;
  readonly maxTokens: number;
}

export interface ServerTarget {
  readonly baseUrl: string;
  readonly model: string;
  readonly apiKey?: string;
}

export function authHeaders(apiKey: string | undefined): Record<string, string> {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

/**
 * Sends one streaming completion and times it as vLLM's `bench serve` does: TTFT at the first
 * chunk carrying text, one inter-token latency per later chunk carrying text, end-to-end at the
 * end of the stream. Output tokens come from the server's usage report (`include_usage`).
 * Greedy sampling with ignore_eos, so the output length is exactly the one asked for.
 */
export async function runCompletion(target: ServerTarget, job: CompletionJob): Promise<RequestOutcome> {
  const body = JSON.stringify({
    model: target.model,
    prompt: job.prompt,
    max_tokens: job.maxTokens,
    temperature: 0,
    ignore_eos: true,
    stream: true,
    stream_options: { include_usage: true },
  });
  const itl: number[] = [];
  let ttft = 0;
  let last = 0;
  let outputTokens = 0;
  let promptTokens = job.promptLen;
  const start = performance.now();
  const fail = (error: string): RequestOutcome => ({
    success: false,
    error,
    promptTokens,
    outputTokens,
    ttft,
    itl,
    latency: (performance.now() - start) / 1000,
  });
  let res: Response;
  try {
    res = await fetch(`${target.baseUrl}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...authHeaders(target.apiKey) },
      body,
    });
  } catch (err) {
    return fail(`connection failed: ${(err as Error).message}`);
  }
  if (!res.ok || !res.body) {
    const text = await res.text().catch(() => "");
    return fail(`HTTP ${res.status}: ${text.slice(0, 300)}`);
  }
  const decoder = new TextDecoder();
  let buffer = "";
  let sawDone = false;
  let sawText = false;
  try {
    for await (const bytes of res.body) {
      buffer += decoder.decode(bytes as Uint8Array, { stream: true });
      let sep = buffer.indexOf("\n\n");
      while (sep >= 0) {
        const event = buffer.slice(0, sep);
        buffer = buffer.slice(sep + 2);
        sep = buffer.indexOf("\n\n");
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") {
          sawDone = true;
          continue;
        }
        const now = performance.now();
        const chunk = JSON.parse(data) as {
          error?: { message?: string };
          choices?: { text?: string }[];
          usage?: { completion_tokens?: number; prompt_tokens?: number } | null;
        };
        if (chunk.error) return fail(`server error mid-stream: ${chunk.error.message}`);
        if (chunk.usage) {
          outputTokens = chunk.usage.completion_tokens ?? outputTokens;
          promptTokens = chunk.usage.prompt_tokens ?? promptTokens;
        }
        if (chunk.choices?.[0]?.text) {
          if (!sawText) {
            sawText = true;
            ttft = (now - start) / 1000;
          } else {
            itl.push((now - last) / 1000);
          }
          last = now;
        }
      }
    }
  } catch (err) {
    return fail(`stream broke: ${(err as Error).message}`);
  }
  if (!sawDone) return fail("stream ended without [DONE]");
  if (!sawText) return fail("no tokens were streamed");
  return { success: true, promptTokens, outputTokens, ttft, itl, latency: (last - start) / 1000 };
}
