/**
 * Constants of the GGUF v3 container (ggml's model file format, as llama.cpp reads it).
 * Numbers are fixed by the format: never renumber them.
 */
export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types (gguf_type). */
export const GgufType = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;
export type GgufScalarType = Exclude<keyof typeof GgufType, "array">;

/**
 * Tensor element types (ggml_type) this project writes: floats, the four block formats it
 * quantizes to, and the others it reads (written back as they were stored).
 */
export const GgmlType = {
  f32: 0,
  f16: 1,
  q4_0: 2,
  q4_1: 3,
  q5_0: 6,
  q5_1: 7,
  q8_0: 8,
  q2_k: 10,
  q3_k: 11,
  q4_k: 12,
  q5_k: 13,
  q6_k: 14,
  iq4_nl: 20,
  iq4_xs: 23,
  bf16: 30,
  mxfp4: 39,
} as const;
export type GgmlTypeName = keyof typeof GgmlType;

/** Values per block and bytes per block of each type (1 and the element size for floats). */
export const GGML_BLOCK: Readonly<Record<GgmlTypeName, { block: number; bytes: number }>> = {
  f32: { block: 1, bytes: 4 },
  f16: { block: 1, bytes: 2 },
  bf16: { block: 1, bytes: 2 },
  q4_0: { block: 32, bytes: 18 },
  q8_0: { block: 32, bytes: 34 },
  q4_k: { block: 256, bytes: 144 },
  q6_k: { block: 256, bytes: 210 },
  q4_1: { block: 32, bytes: 20 },
  q5_0: { block: 32, bytes: 22 },
  q5_1: { block: 32, bytes: 24 },
  q5_k: { block: 256, bytes: 176 },
  q3_k: { block: 256, bytes: 110 },
  q2_k: { block: 256, bytes: 84 },
  iq4_nl: { block: 32, bytes: 18 },
  iq4_xs: { block: 256, bytes: 136 },
  mxfp4: { block: 32, bytes: 17 },
};

/**
 * general.file_type (llama_ftype): a model whose matrices are all of one float type, or the
 * quantization mixes `--quantize` writes (llama.cpp's MOSTLY_Q4_0, MOSTLY_Q8_0, MOSTLY_Q4_K_M,
 * MOSTLY_Q5_K_M).
 */
export const LlamaFileType = {
  f32: 0,
  f16: 1,
  bf16: 32,
  q4_0: 2,
  q8_0: 7,
  q4_k_m: 15,
  q5_k_m: 17,
  iq4_xs: 30,
  mxfp4_moe: 38,
} as const;

/** The quantizations `convert --to gguf --quantize` writes. */
export const GGUF_QUANTIZE = ["q8_0", "q4_0", "q4_k_m", "q5_k_m", "iq4_xs", "mxfp4_moe"] as const;
export type GgufQuantize = (typeof GGUF_QUANTIZE)[number];

/** tokenizer.ggml.token_type values (llama_token_type). */
export const TokenType = {
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;
