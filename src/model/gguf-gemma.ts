import type { ModelConfig, RopeScaling } from "./config.js";
import { GgufError, type GgufMetaValue } from "./gguf-reader.js";
import type { GemmaFeatures } from "./hf-gemma.js";

/**
 * Gemma 2 and Gemma 3 as llama.cpp's "gemma2" and "gemma3" architectures describe them, for the
 * GGUF loader and the GGUF writer alike. What llama.cpp fixes rather than reads from the file:
 *  - the attention scale: (hidden / heads)^-½ for the 27B layer counts, head_dim^-½ otherwise
 *    (query_pre_attn_scalar is not stored);
 *  - gemma2 always soft-caps attention scores and logits (50 and 30 unless the file says), never
 *    has an output matrix of its own, and runs its window layers with the global RoPE;
 *  - gemma3 never soft-caps attention scores, and its window layers take rope.freq_base_swa
 *    (10000 when absent) without the global rope scaling.
 * Which layers use the window: attention.sliding_window_pattern, a period n (layer l uses the
 * window when l mod n < n − 1; default 2 for gemma2, 6 for gemma3) or one flag per layer.
 */
export type GemmaGgufArch = "gemma" | "gemma2" | "gemma3";

/** Our family for each of llama.cpp's Gemma architectures. */
export const GEMMA_FAMILY = { gemma: "gemma", gemma2: "gemma2", gemma3: "gemma3_text" } as const;

const DEFAULT_PATTERN: Record<Exclude<GemmaGgufArch, "gemma">, number> = { gemma2: 2, gemma3: 6 };
/**
 * Layer counts llama.cpp takes for the 27B models, whose attention scale it derives from hidden /
 * heads (gemma, Gemma 1, always scales by head_dim^-½).
 */
const LAYERS_27B: Record<GemmaGgufArch, number> = { gemma: -1, gemma2: 46, gemma3: 62 };

/** The attention scale llama.cpp applies for a Gemma of this shape. */
export function gemmaAttentionScale(
  arch: GemmaGgufArch,
  c: Pick<ModelConfig, "numLayers" | "hiddenSize" | "numHeads" | "headDim">,
): number {
  const dim = c.numLayers === LAYERS_27B[arch] ? Math.floor(c.hiddenSize / c.numHeads) : c.headDim;
  return dim ** -0.5;
}

/** Whether layer l uses the window under llama.cpp's period-n rule. */
function inPattern(n: number, l: number): boolean {
  return n === 0 || l % n < n - 1;
}

/**
 * sliding_window_pattern for per-layer window flags: the smallest period that gives them (an
 * integer, as llama.cpp's own files store it), else the flags themselves.
 */
export function encodeWindowPattern(layers: readonly boolean[]): number | readonly boolean[] {
  for (let n = 1; n <= layers.length + 1; n++) {
    if (layers.every((w, l) => w === inPattern(n, l))) return n;
  }
  return layers;
}

/** The structural view of the loader's metadata this file needs. */
export interface GemmaMeta {
  readonly file: string;
  get(key: string): GgufMetaValue | undefined;
  num(key: string): number | undefined;
}

function windowLayers(meta: GemmaMeta, arch: Exclude<GemmaGgufArch, "gemma">, numLayers: number): boolean[] {
  const key = `${arch}.attention.sliding_window_pattern`;
  const v = meta.get(key);
  if (Array.isArray(v)) {
    if (v.length !== numLayers)
      throw new GgufError(meta.file, `${key} has ${v.length} entries for ${numLayers} layers`);
    return v.map((x) => x === true || (typeof x === "number" && x !== 0));
  }
  const n = v === undefined ? DEFAULT_PATTERN[arch] : meta.num(key)!;
  if (!Number.isInteger(n) || n < 0) throw new GgufError(meta.file, `${key} = ${n} is not a layer period`);
  return Array.from({ length: numLayers }, (_, l) => inPattern(n, l));
}

function positive(meta: GemmaMeta, key: string, dflt?: number): number | undefined {
  const v = meta.num(key) ?? dflt;
  if (v !== undefined && !(v > 0)) throw new GgufError(meta.file, `${key} = ${v} is not positive`);
  return v;
}

/** The Gemma part of the config of a llama.cpp gemma2 / gemma3 file. */
export function gemmaGgufFeatures(
  meta: GemmaMeta,
  arch: GemmaGgufArch,
  c: Pick<ModelConfig, "numLayers" | "hiddenSize" | "numHeads" | "headDim" | "ropeTheta"> & {
    readonly ropeScaling: RopeScaling | null;
  },
): GemmaFeatures {
  // Gemma 1: Llama's two norms a layer, no window or soft-caps, head_dim^-½ scores (the default).
  if (arch === "gemma")
    return {
      slidingWindow: null,
      normPlusOne: true,
      embedScale: true,
      embedScaleExact: true,
      activation: "gelu_tanh",
    };
  const k = (name: string) => `${arch}.${name}`;
  let sliding: boolean[] = [];
  let window: number | undefined;
  if (arch === "gemma2") {
    window = positive(meta, k("attention.sliding_window"), 4096);
    sliding = windowLayers(meta, arch, c.numLayers);
  } else {
    // gemma3 runs without a window when the file states none (or 0).
    window = meta.num(k("attention.sliding_window"));
    if (window !== undefined && window > 0) sliding = windowLayers(meta, arch, c.numLayers);
  }
  const any = sliding.includes(true);
  const localBase = meta.num(k("rope.freq_base_swa"));
  let localRopeTheta: number | undefined;
  if (arch === "gemma3") localRopeTheta = localBase ?? 10000;
  else if (any && localBase !== undefined && localBase !== c.ropeTheta) {
    // gemma2's window layers keep the global rope scaling; ours take a local base without it.
    if (c.ropeScaling !== null)
      throw new GgufError(
        meta.file,
        `gemma2 with its own window-layer RoPE base (${k("rope.freq_base_swa")}) and rope scaling is not supported`,
      );
    localRopeTheta = localBase;
  }
  const attnSoftcap = arch === "gemma2" ? positive(meta, k("attn_logit_softcapping"), 50) : undefined;
  const finalCap = meta.num(k("final_logit_softcapping"));
  const finalSoftcap =
    arch === "gemma2" ? positive(meta, k("final_logit_softcapping"), 30) : finalCap ? finalCap : undefined;
  return {
    slidingWindow: any ? window! : null,
    ...(any ? { slidingLayers: sliding } : {}),
    ...(arch === "gemma3" ? { qkNorm: true } : {}),
    ...(localRopeTheta !== undefined ? { localRopeTheta } : {}),
    normPlusOne: true,
    embedScale: true,
    embedScaleExact: true,
    postNorms: true,
    activation: "gelu_tanh",
    attentionScale: gemmaAttentionScale(arch, c),
    ...(attnSoftcap !== undefined ? { attnSoftcap } : {}),
    ...(finalSoftcap !== undefined ? { finalSoftcap } : {}),
  };
}
