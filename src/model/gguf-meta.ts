// A GGUF file's architecture and metadata keys as the other GGUF readers take them: which llama.cpp
// architectures the engine runs (and what it says of those it refuses), and every key read with its checks.
import type { Architecture } from "./config.js";
import type { GemmaGgufArch } from "./gguf-gemma.js";
import { GgufError, type GgufMetaValue } from "./gguf-reader.js";

/** The llama.cpp architectures a GGUF file may name for the engine to run. */
const SUPPORTED_ARCHS = [
  "llama",
  "qwen2",
  "qwen3",
  "qwen3moe",
  "phi3",
  "gemma",
  "gemma2",
  "gemma3",
  "granite",
  "granitemoe",
  "smollm3",
  "olmo2",
  "olmoe",
  "ernie4_5",
  "ernie4_5-moe",
  "gpt-oss",
  "glm4",
  "qwen2moe",
  "glm4moe",
  "seed_oss",
  "exaone4",
] as const;
export type SupportedArch = (typeof SUPPORTED_ARCHS)[number];

/** The engine's family of each llama.cpp architecture but Gemma's (gguf-gemma.ts); llama with experts is Mixtral. */
export const FAMILY_OF: Readonly<Record<Exclude<SupportedArch, GemmaGgufArch>, Architecture>> = {
  llama: "llama",
  qwen2: "qwen2",
  qwen3: "qwen3",
  qwen3moe: "qwen3_moe",
  phi3: "phi3",
  granite: "granite",
  granitemoe: "granite",
  smollm3: "smollm3",
  olmo2: "olmo2",
  olmoe: "olmoe",
  ernie4_5: "ernie4_5",
  "ernie4_5-moe": "ernie4_5_moe",
  "gpt-oss": "gpt_oss",
  glm4: "glm4",
  qwen2moe: "qwen2_moe",
  glm4moe: "glm4_moe",
  seed_oss: "seed_oss",
  exaone4: "exaone4",
};

/** llama.cpp architectures of families the engine does not run, with what to say about them. */
const REFUSED_ARCHS: Readonly<Record<string, string>> = {
  gemma3n: "Gemma 3n (per-layer embeddings, AltUp) is not a family the engine runs",
  gemma4: "Gemma 4 is not a family the engine runs",
  "gemma-embedding": "EmbeddingGemma is an encoder (bidirectional attention), not a decoder the engine runs",
};

/** A file's metadata, read with the checks every key gets: numbers finite, required ones positive integers. */
export class Meta {
  constructor(
    readonly file: string,
    private readonly map: ReadonlyMap<string, GgufMetaValue>,
  ) {}
  get = (key: string): GgufMetaValue | undefined => this.map.get(key);
  num(key: string): number | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    const n = typeof v === "bigint" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isFinite(n)) {
      throw new GgufError(this.file, `metadata "${key}" is not a number (${JSON.stringify(String(v))})`);
    }
    return n;
  }
  need(key: string): number {
    const n = this.num(key);
    if (n === undefined) throw new GgufError(this.file, `missing metadata "${key}"`);
    if (!Number.isInteger(n) || n <= 0)
      throw new GgufError(this.file, `metadata "${key}" = ${n} is not a positive integer`);
    return n;
  }
}

export function architectureOf(meta: Meta): SupportedArch {
  const arch = meta.get("general.architecture");
  if (typeof arch !== "string") throw new GgufError(meta.file, 'missing metadata "general.architecture"');
  if (!(SUPPORTED_ARCHS as readonly string[]).includes(arch)) {
    const why = REFUSED_ARCHS[arch];
    throw new GgufError(
      meta.file,
      `unsupported architecture "${arch}"${why ? `: ${why}` : ""} (supported: ${SUPPORTED_ARCHS.join(", ")}; Mistral is stored as llama)`,
    );
  }
  return arch as SupportedArch;
}

export function isGemma(arch: SupportedArch): arch is GemmaGgufArch {
  return arch === "gemma" || arch === "gemma2" || arch === "gemma3";
}
