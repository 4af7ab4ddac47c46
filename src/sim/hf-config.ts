import type { SimModel } from "./types.js";

/** Reads the fields the simulator needs from a Hugging Face config.json (Llama/Mistral/Qwen2 style). */
export function modelFromHfConfig(raw: unknown, file: string): SimModel {
  if (typeof raw !== "object" || raw === null) throw new Error(`model config ${file}: not a JSON object`);
  const c = raw as Record<string, unknown>;
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      throw new Error(
        `model config ${file}: "${key}" must be a positive integer (got ${JSON.stringify(c[key])})`,
      );
    }
    return v;
  };
  const hidden = int("hidden_size");
  const layers = int("num_hidden_layers");
  const heads = int("num_attention_heads");
  const kvHeads = int("num_key_value_heads", heads);
  const headDim = int("head_dim", Math.floor(hidden / heads));
  const intermediate = int("intermediate_size");
  const vocab = int("vocab_size");
  if (heads % kvHeads !== 0)
    throw new Error(`model config ${file}: heads ${heads} not a multiple of kv heads ${kvHeads}`);
  const tied = c.tie_word_embeddings === true;
  const dtype = typeof c.torch_dtype === "string" ? c.torch_dtype : "bfloat16";
  const bytesPerElement = dtype === "float32" ? 4 : 2;
  const perLayer =
    hidden * heads * headDim +
    2 * hidden * kvHeads * headDim +
    heads * headDim * hidden +
    3 * hidden * intermediate +
    2 * hidden;
  const params = layers * perLayer + vocab * hidden * (tied ? 1 : 2) + hidden;
  const name = typeof c._name_or_path === "string" && c._name_or_path ? c._name_or_path : file;
  return {
    name,
    aliases: [],
    source: `Hugging Face config ${file}`,
    params,
    weightBytes: params * bytesPerElement,
    layers,
    hidden,
    heads,
    kvHeads,
    headDim,
    intermediate,
    vocab,
    bytesPerElement,
  };
}
