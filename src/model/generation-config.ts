import { existsSync } from "node:fs";
import { z } from "zod";
import { parseWithSchema, readJsonFile } from "./json-file.js";
import type { GenerationDefaults } from "./types.js";

/**
 * generation_config.json → GenerationDefaults. Every key is optional; unknown keys are ignored.
 * `do_sample: false` means greedy decoding in transformers whatever the temperature says, so it
 * becomes temperature 0 here.
 */
const tokenId = z.number().int().nonnegative();

const schema = z.object({
  eos_token_id: z.union([tokenId, z.array(tokenId)]).nullish(),
  do_sample: z.boolean().nullish(),
  temperature: z.number().nonnegative().nullish(),
  top_p: z.number().gt(0).lte(1).nullish(),
  top_k: z.number().int().nonnegative().nullish(),
  repetition_penalty: z.number().positive().nullish(),
  max_new_tokens: z.number().int().positive().nullish(),
});

export function parseGenerationConfig(json: unknown, file: string): GenerationDefaults {
  const raw = parseWithSchema(file, schema, json);
  const out: {
    -readonly [K in keyof GenerationDefaults]: GenerationDefaults[K];
  } = {};
  if (raw.eos_token_id != null) {
    out.eosTokenIds = Array.isArray(raw.eos_token_id) ? raw.eos_token_id : [raw.eos_token_id];
  }
  if (raw.do_sample === false) out.temperature = 0;
  else if (raw.temperature != null) out.temperature = raw.temperature;
  if (raw.top_p != null) out.topP = raw.top_p;
  if (raw.top_k != null) out.topK = raw.top_k;
  if (raw.repetition_penalty != null) out.repetitionPenalty = raw.repetition_penalty;
  if (raw.max_new_tokens != null) out.maxNewTokens = raw.max_new_tokens;
  return out;
}

/** Reads generation_config.json if it exists (it is optional in a model directory). */
export function loadGenerationConfig(file: string): GenerationDefaults {
  if (!existsSync(file)) return {};
  return parseGenerationConfig(readJsonFile(file), file);
}
