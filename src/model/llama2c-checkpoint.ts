import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import type { ModelConfig } from "./config.js";
import { deinterleaveRows } from "./qk-row-order.js";
import { allocTensorData, type Tensor, tensorDataOver } from "./tensor.js";
import type { WeightStore } from "./types.js";

/**
 * llama2.c's legacy checkpoint (.bin, "version 0" of its export.py): a header of seven int32
 * (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size
 * means an unshared classifier is stored at the end), then fp32 tensors stacked over layers in a
 * fixed order. We turn it into Hugging Face names and layout, so the rest of the system never
 * knows where a model came from: the rows of wq and wk are permuted from Meta's interleaved-pair
 * RoPE layout to the rotate-half layout (the permutation transformers' Llama conversion applies).
 */

const HEADER_BYTES = 28;
/** First int32 of llama2.c's newer export formats ("ak42"); those files are not the legacy layout. */
const NEW_FORMAT_MAGIC = 0x616b3432;

export interface Llama2cHeader {
  readonly dim: number;
  readonly hiddenDim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly vocabSize: number;
  readonly sharedClassifier: boolean;
  readonly seqLen: number;
}

/** One stacked field of the file, in file order. */
interface Field {
  readonly key: string;
  /** Floats per layer (or in total, for unstacked fields). */
  readonly floats: number;
  readonly layers: number;
  /** HF tensor name for layer l (null: skipped legacy data). */
  readonly hfName: ((l: number) => string) | null;
  readonly shape: readonly number[];
  /** Rows to un-interleave for rotate-half RoPE: the head count, or 0 for none. */
  readonly ropeHeads: number;
}

export function readLlama2cHeader(file: string, fd: number, fileSize: number): Llama2cHeader {
  if (fileSize < HEADER_BYTES) {
    throw new Error(`${file}: only ${fileSize} bytes, too short for a llama2.c checkpoint header`);
  }
  const buf = new Int32Array(7);
  readSync(fd, new Uint8Array(buf.buffer), 0, HEADER_BYTES, 0);
  if (buf[0] === NEW_FORMAT_MAGIC) {
    throw new Error(
      `${file}: this is a llama2.c version-1/2 export ("ak42" magic); only the legacy format (export.py --version 0) is supported`,
    );
  }
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = Array.from(buf);
  const h = {
    dim: dim!,
    hiddenDim: hiddenDim!,
    nLayers: nLayers!,
    nHeads: nHeads!,
    nKvHeads: nKvHeads!,
    vocabSize: Math.abs(rawVocab!),
    sharedClassifier: rawVocab! > 0,
    seqLen: seqLen!,
  };
  const bad = (why: string): never => {
    throw new Error(
      `${file}: not a valid llama2.c checkpoint header (${why}): ${JSON.stringify(Array.from(buf))}`,
    );
  };
  for (const [k, v] of Object.entries(h)) if (typeof v === "number" && !(v > 0)) bad(`${k} must be positive`);
  if (h.dim % h.nHeads !== 0) bad("dim must be a multiple of n_heads");
  if (h.nHeads % h.nKvHeads !== 0) bad("n_heads must be a multiple of n_kv_heads");
  if ((h.dim / h.nHeads) % 2 !== 0) bad("head size must be even");
  return h;
}

/** The file's fields in the order llama2.c's run.c (memory_map_weights) reads them: the file has no index, so this order is its layout. */
function fields(h: Llama2cHeader): Field[] {
  const hs = h.dim / h.nHeads;
  const ropeTableFloats = (h.seqLen * hs) / 2;
  return [
    single("token_embedding_table", "model.embed_tokens.weight", [h.vocabSize, h.dim]),
    ...layerFields(h),
    single("rms_final_weight", "model.norm.weight", [h.dim]),
    // Legacy precomputed RoPE tables (seq_len × head_size/2 each): present in the file, unused.
    skipped("freq_cis_real", ropeTableFloats),
    skipped("freq_cis_imag", ropeTableFloats),
    // A shared classifier is the embedding table itself, so only an unshared one is stored.
    ...(h.sharedClassifier ? [] : [single("wcls", "lm_head.weight", [h.vocabSize, h.dim])]),
  ];
}

/**
 * The per-layer tensors, each stacked over all layers in the file. wq and wk carry their head
 * counts because their rows must be un-interleaved for rotate-half RoPE.
 */
function layerFields(h: Llama2cHeader): Field[] {
  const kvDim = h.nKvHeads * (h.dim / h.nHeads);
  const stacked = (key: string, suffix: string, shape: readonly number[], ropeHeads = 0): Field => ({
    key,
    floats: shape.reduce((a, b) => a * b, 1),
    layers: h.nLayers,
    hfName: (l) => `model.layers.${l}.${suffix}`,
    shape,
    ropeHeads,
  });
  return [
    stacked("rms_att_weight", "input_layernorm.weight", [h.dim]),
    stacked("wq", "self_attn.q_proj.weight", [h.dim, h.dim], h.nHeads),
    stacked("wk", "self_attn.k_proj.weight", [kvDim, h.dim], h.nKvHeads),
    stacked("wv", "self_attn.v_proj.weight", [kvDim, h.dim]),
    stacked("wo", "self_attn.o_proj.weight", [h.dim, h.dim]),
    stacked("rms_ffn_weight", "post_attention_layernorm.weight", [h.dim]),
    stacked("w1", "mlp.gate_proj.weight", [h.hiddenDim, h.dim]),
    stacked("w2", "mlp.down_proj.weight", [h.dim, h.hiddenDim]),
    stacked("w3", "mlp.up_proj.weight", [h.hiddenDim, h.dim]),
  ];
}

/** A tensor stored once (not per layer). */
function single(key: string, hfName: string, shape: readonly number[]): Field {
  return {
    key,
    floats: shape.reduce((a, b) => a * b, 1),
    layers: 1,
    hfName: () => hfName,
    shape,
    ropeHeads: 0,
  };
}

/** Data the file holds but the model does not use: read past, never loaded. */
function skipped(key: string, floats: number): Field {
  return { key, floats, layers: 1, hfName: null, shape: [], ropeHeads: 0 };
}

/** ModelConfig for a llama2.c checkpoint (run.c's fixed constants: eps 1e-5, theta 10000). */
export function llama2cConfig(h: Llama2cHeader): ModelConfig {
  return {
    architecture: "llama",
    vocabSize: h.vocabSize,
    hiddenSize: h.dim,
    intermediateSize: h.hiddenDim,
    numLayers: h.nLayers,
    numHeads: h.nHeads,
    numKvHeads: h.nKvHeads,
    headDim: h.dim / h.nHeads,
    maxPositionEmbeddings: h.seqLen,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    tieWordEmbeddings: h.sharedClassifier,
    attentionBias: false,
    slidingWindow: null,
    bosTokenId: 1,
    eosTokenIds: [2],
  };
}

export interface Llama2cCheckpoint {
  readonly header: Llama2cHeader;
  readonly config: ModelConfig;
  readonly weights: WeightStore;
}

/** Reads a legacy llama2.c .bin into HF-named, HF-laid-out fp32 tensors. */
export function readLlama2cCheckpoint(
  file: string,
  opts: { readonly data?: boolean } = {},
): Llama2cCheckpoint {
  const fd = openSync(file, "r");
  try {
    const fileSize = fstatSync(fd).size;
    const header = readLlama2cHeader(file, fd, fileSize);
    const layout = fields(header);
    checkSize(file, fileSize, layout);

    const weights = new Map<string, Tensor>();
    if (opts.data === false) return { header, config: llama2cConfig(header), weights };
    let offset = HEADER_BYTES;
    for (const f of layout) {
      for (let l = 0; l < f.layers; l++, offset += f.floats * 4) {
        if (f.hfName === null) continue;
        const name = f.hfName(l);
        let data = allocTensorData("f32", f.floats) as Float32Array;
        readExactly(fd, data, offset);
        if (f.ropeHeads > 0) {
          const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
          data = tensorDataOver("f32", deinterleaveRows(raw, f.ropeHeads, header.dim * 4));
        }
        weights.set(name, { name, dtype: "f32", shape: f.shape, data });
      }
    }
    return { header, config: llama2cConfig(header), weights };
  } finally {
    closeSync(fd);
  }
}

function readExactly(fd: number, target: Float32Array, position: number): void {
  const bytes = new Uint8Array(target.buffer, target.byteOffset, target.byteLength);
  let done = 0;
  while (done < bytes.length) {
    const n = readSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30), position + done);
    if (n === 0) throw new Error("unexpected end of file"); // sizes were checked; only a file shrinking under us
    done += n;
  }
}

/** The file must be exactly header + fields; a short file names the tensor it cuts into. */
function checkSize(file: string, fileSize: number, layout: readonly Field[]): void {
  let offset = HEADER_BYTES;
  for (const f of layout) {
    const bytes = f.floats * 4;
    const end = offset + bytes * f.layers;
    if (end > fileSize) {
      const layer = Math.floor((fileSize - offset) / bytes);
      const which = f.layers > 1 ? ` of layer ${layer}` : "";
      const hf = f.hfName ? ` (${f.hfName(layer)})` : "";
      throw new Error(
        `${file}: truncated: the file ends inside llama2.c tensor ${f.key}${which}${hf}; ` +
          `the header implies at least ${expectedSize(layout)} bytes, the file has ${fileSize}`,
      );
    }
    offset = end;
  }
  if (offset !== fileSize) {
    throw new Error(
      `${file}: ${fileSize - offset} bytes beyond what the header implies (${offset} bytes); ` +
        "not a legacy llama2.c checkpoint, or the header is wrong",
    );
  }
}

function expectedSize(layout: readonly Field[]): number {
  return layout.reduce((n, f) => n + f.floats * 4 * f.layers, HEADER_BYTES);
}
