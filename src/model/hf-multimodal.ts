/**
 * Multimodal checkpoints run as their language model alone: Gemma 3's 4B, 12B and 27B releases
 * (Gemma3ForConditionalGeneration, model_type "gemma3") and Mistral Small 3.1/3.2
 * (Mistral3ForConditionalGeneration, "mistral3") nest the text model's config in text_config
 * (Gemma's stating only what differs from transformers' Gemma3TextConfig defaults), and
 * store its weights under a prefix (language_model.model.*, or model.language_model.* as newer
 * transformers save them) beside the vision tower's, which are not read.
 */

/** transformers' Gemma3TextConfig defaults for the fields a nested text_config may leave out. */
const GEMMA3_TEXT_DEFAULTS = {
  vocab_size: 262208,
  hidden_size: 2304,
  intermediate_size: 9216,
  num_hidden_layers: 26,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 256,
  tie_word_embeddings: true,
};

/** Wrapper model types whose text model the engine runs, and that model's type. */
const WRAPPERS: Readonly<Record<string, { text: string; defaults: object }>> = {
  gemma3: { text: "gemma3_text", defaults: GEMMA3_TEXT_DEFAULTS },
  // Mistral Small 3.1 / 3.2 (Mistral3ForConditionalGeneration): a Mistral whose text_config is complete.
  mistral3: { text: "mistral", defaults: {} },
};

/** The text model's config.json of a multimodal one (null for any other config). */
export function textModelConfig(json: object, file: string): object | null {
  const type = (json as { model_type?: unknown }).model_type;
  const wrapper = typeof type === "string" ? WRAPPERS[type] : undefined;
  if (!wrapper) return null;
  const text = (json as { text_config?: unknown }).text_config;
  if (typeof text !== "object" || text === null || Array.isArray(text))
    throw new Error(`${file}: model_type "${type}" without a text_config object`);
  const top = json as { bos_token_id?: unknown; eos_token_id?: unknown };
  return {
    ...wrapper.defaults,
    // The stop tokens are often stated at the top level only.
    ...(top.bos_token_id !== undefined ? { bos_token_id: top.bos_token_id } : {}),
    ...(top.eos_token_id !== undefined ? { eos_token_id: top.eos_token_id } : {}),
    ...text,
    model_type: wrapper.text,
  };
}

/**
 * Where a multimodal checkpoint may keep a text-model weight the engine names `name`
 * (model.* / lm_head.weight), in the order tried.
 */
export function nestedWeightNames(name: string): string[] {
  if (name === "lm_head.weight") return ["language_model.lm_head.weight"];
  if (!name.startsWith("model.")) return [];
  const rest = name.slice("model.".length);
  return [`language_model.model.${rest}`, `model.language_model.${rest}`];
}
