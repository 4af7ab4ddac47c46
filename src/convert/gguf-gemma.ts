import type { ModelConfig } from "../model/config.js";
import { encodeWindowPattern, type GemmaGgufArch, gemmaAttentionScale } from "../model/gguf-gemma.js";
import { type GgufKv, gguf } from "./gguf-writer.js";

/**
 * Gemma 2 / Gemma 3 export: which of llama.cpp's architectures runs the model as we do, and the
 * metadata that tells it how. Anything llama.cpp would compute differently is refused by name
 * (see model/gguf-gemma.ts for what it fixes rather than reads).
 */
export function gemmaGgufArchitecture(c: ModelConfig, label: string): GemmaGgufArch {
  const arch: GemmaGgufArch =
    c.architecture === "gemma" ? "gemma" : c.architecture === "gemma2" ? "gemma2" : "gemma3";
  const refuse = (why: string): never => {
    throw new Error(`GGUF export of ${label}: ${why}`);
  };
  // Gemma 1 has Llama's two norms a layer; Gemma 2 and 3 add norms after attention and the FFN.
  const postNorms = arch !== "gemma";
  if (!c.embedScale || (c.postNorms === true) !== postNorms || c.activation !== "gelu_tanh")
    refuse(
      `llama.cpp's ${arch} scales embeddings by √hidden, ${postNorms ? "has" : "has no"} post-norms and GeGLU; this model differs`,
    );
  if (c.attentionBias || c.moe || c.fusedProjections)
    refuse(`llama.cpp's ${arch} has no q/k/v biases, experts or fused projections`);
  if ((c.qkNorm === true) !== (arch === "gemma3"))
    refuse(`llama.cpp's gemma2 has no q/k norms and its gemma3 always has them (${c.architecture})`);
  const scale = c.attentionScale ?? c.headDim ** -0.5;
  const theirs = gemmaAttentionScale(arch, c);
  if (Math.fround(scale) !== Math.fround(theirs))
    refuse(
      `attention scale ${scale.toPrecision(6)} (query_pre_attn_scalar ${(scale ** -2).toPrecision(6)}) differs from ` +
        `the ${theirs.toPrecision(6)} llama.cpp's ${arch} fixes for ${c.numLayers} layers of head_dim ${c.headDim}`,
    );
  if (c.ropeScaling !== null && c.ropeScaling.type !== "linear")
    refuse(`${c.ropeScaling.type} RoPE scaling in llama.cpp's ${arch} is not supported (linear is)`);
  const windowed = c.slidingWindow !== null && (c.slidingLayers ?? []).some(Boolean);
  if (arch === "gemma") {
    if (c.attnSoftcap !== undefined || c.finalSoftcap !== undefined || windowed)
      refuse("llama.cpp's gemma has no soft-caps or window layers");
    if (!c.tieWordEmbeddings)
      refuse("llama.cpp's gemma takes the output matrix from the embeddings; lm_head is separate here");
  } else if (arch === "gemma2") {
    if (c.attnSoftcap === undefined || c.finalSoftcap === undefined)
      refuse(
        "llama.cpp's gemma2 always soft-caps attention scores and logits; this model does not (a null soft-cap)",
      );
    if (!c.tieWordEmbeddings)
      refuse("llama.cpp's gemma2 takes the output matrix from the embeddings; lm_head is separate here");
    if (
      windowed &&
      c.localRopeTheta !== undefined &&
      c.localRopeTheta !== c.ropeTheta &&
      c.ropeScaling !== null
    )
      refuse(
        "gemma2 window layers with their own RoPE base and rope scaling have no equivalent in llama.cpp",
      );
  } else {
    if (c.attnSoftcap !== undefined) refuse("llama.cpp's gemma3 does not soft-cap attention scores");
    if (windowed && c.localRopeTheta === undefined && c.ropeScaling !== null)
      refuse(
        "llama.cpp's gemma3 window layers take RoPE without scaling; this model's take the global scaled one",
      );
  }
  return arch;
}

/** The Gemma keys of the metadata (the common ones are written for every architecture). */
export function gemmaMetadata(arch: GemmaGgufArch, c: ModelConfig): GgufKv[] {
  const k = (name: string) => `${arch}.${name}`;
  const kv: GgufKv[] = [];
  if (c.attnSoftcap !== undefined)
    kv.push({ key: k("attn_logit_softcapping"), value: gguf.f32(c.attnSoftcap) });
  if (c.finalSoftcap !== undefined)
    kv.push({ key: k("final_logit_softcapping"), value: gguf.f32(c.finalSoftcap) });
  if (arch === "gemma") return kv;
  const layers = Array.from(
    { length: c.numLayers },
    (_, l) => c.slidingWindow !== null && (c.slidingLayers?.[l] ?? true),
  );
  if (layers.includes(true)) {
    kv.push({ key: k("attention.sliding_window"), value: gguf.u32(c.slidingWindow!) });
  } else if (arch === "gemma2") {
    // llama.cpp's gemma2 always has window layers: a window as long as the context is none.
    kv.push({ key: k("attention.sliding_window"), value: gguf.u32(c.maxPositionEmbeddings) });
  }
  const pattern = encodeWindowPattern(layers);
  kv.push({
    key: k("attention.sliding_window_pattern"),
    value: typeof pattern === "number" ? gguf.u32(pattern) : gguf.array("bool", pattern),
  });
  const local = c.localRopeTheta ?? c.ropeTheta;
  if (arch === "gemma3" || local !== c.ropeTheta)
    kv.push({ key: k("rope.freq_base_swa"), value: gguf.f32(local) });
  return kv;
}
