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

/** Tensor element types (ggml_type) this project writes: unquantized floats only. */
export const GgmlType = { f32: 0, f16: 1, bf16: 30 } as const;
export type GgmlTypeName = keyof typeof GgmlType;

/** general.file_type (llama_ftype) for a model whose matrices are all of one float type. */
export const LlamaFileType = { f32: 0, f16: 1, bf16: 32 } as const;

/** tokenizer.ggml.token_type values (llama_token_type). */
export const TokenType = {
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;
