import { randomUUID } from "node:crypto";
import type { Command } from "commander";
import {
  MAX_LOGIT_BIAS,
  MAX_REPETITION_PENALTY,
  MAX_TEMPERATURE,
  resolveSamplingParams,
} from "../engine/sampling-params.js";
import { createEngine } from "../placement/create-engine.js";
import { addEngineFlags, type EngineFlagValues, engineOptionsFromFlags } from "./engine-flags.js";
import { collect, floatArg, InvalidValueError, intArg, named } from "./parse.js";

interface GenerateFlags extends EngineFlagValues {
  prompt: string;
  chat?: boolean;
  maxTokens: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  repetitionPenalty?: number;
  seed?: number;
  logitBias?: Record<string, number>;
  stop?: string[];
  ignoreEos?: boolean;
  json?: boolean;
}

/** `lamina generate`: one prompt through the engine, streamed to stdout (or one JSON object). */
export function registerGenerateCommand(program: Command): void {
  const cmd = program
    .command("generate")
    .description("generate a continuation of one prompt (streams text; --json prints one JSON object)")
    .requiredOption("--prompt <text>", "the prompt (may be empty: generation starts from BOS)")
    .option("--chat", "wrap the prompt as a user message in the model's chat template")
    .option("--max-tokens <n>", "tokens to generate", intArg(1), 128)
    .option(
      "--temperature <t>",
      "0 = greedy (default: the model's generation_config, else 1)",
      floatArg(0, MAX_TEMPERATURE),
    )
    .option("--top-p <p>", "nucleus sampling", floatArg(0, 1))
    .option("--top-k <k>", "top-k sampling (0 = off)", intArg(0))
    .option("--min-p <p>", "min-p sampling", floatArg(0, 1))
    .option("--repetition-penalty <r>", "penalise repeated tokens", floatArg(0, MAX_REPETITION_PENALTY))
    .option("--seed <s>", "seed for reproducible sampling", intArg(-(2 ** 31), 2 ** 32))
    .option(
      "--logit-bias <id=bias>",
      `add bias (in [-${MAX_LOGIT_BIAS}, ${MAX_LOGIT_BIAS}]) to token id's logit (repeatable)`,
      named("--logit-bias", logitBiasArg),
    )
    .option("--stop <text>", "stop string (repeatable)", collect)
    .option("--ignore-eos", "keep generating past end-of-sequence")
    .option("--json", 'print {"prompt_token_ids", "token_ids", "text"} instead of streaming');
  addEngineFlags(cmd).action(async (flags: GenerateFlags) => {
    const log = (line: string) => process.stderr.write(`${line}\n`);
    const engine = await createEngine(engineOptionsFromFlags(flags), log);
    try {
      if (!flags.json)
        log(
          `model: ${engine.model.label} · kernels: ${engine.backendDescription} · attention: ${engine.attentionDescription}`,
        );
      const text = flags.chat
        ? engine.tokenizer.applyChatTemplate([{ role: "user", content: flags.prompt }], {
            addGenerationPrompt: true,
          })
        : flags.prompt;
      // A chat template already writes the special tokens it wants.
      const promptTokenIds = engine.tokenizer.encode(text, { addSpecialTokens: !flags.chat });
      if (promptTokenIds.length === 0 && engine.tokenizer.bosTokenId !== null)
        promptTokenIds.push(engine.tokenizer.bosTokenId);
      const params = resolveSamplingParams(
        {
          maxTokens: flags.maxTokens,
          ...(flags.temperature !== undefined ? { temperature: flags.temperature } : {}),
          ...(flags.topP !== undefined ? { topP: flags.topP } : {}),
          ...(flags.topK !== undefined ? { topK: flags.topK } : {}),
          ...(flags.minP !== undefined ? { minP: flags.minP } : {}),
          ...(flags.repetitionPenalty !== undefined ? { repetitionPenalty: flags.repetitionPenalty } : {}),
          ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
          ...(flags.logitBias ? { logitBias: flags.logitBias } : {}),
          ...(flags.stop ? { stop: flags.stop } : {}),
          ...(flags.ignoreEos ? { ignoreEos: true } : {}),
        },
        engine.model.generation,
        engine.model.vocabSize,
      );
      const tokenIds: number[] = [];
      let out = "";
      for await (const ev of engine.generate({ id: randomUUID(), promptTokenIds, params })) {
        tokenIds.push(...ev.tokenIds);
        out += ev.text;
        if (!flags.json) process.stdout.write(ev.text);
        if (ev.finishReason === "error") throw new Error(ev.error ?? "generation failed");
      }
      if (flags.json)
        process.stdout.write(
          `${JSON.stringify({ prompt_token_ids: promptTokenIds, token_ids: tokenIds, text: out })}\n`,
        );
      else process.stdout.write("\n");
    } finally {
      await engine.shutdown({ force: true });
    }
  });
}

/**
 * One `--logit-bias ID=BIAS` added to those before it, as OpenAI's map (token id → bias); that the
 * id is inside the vocabulary is checked once the model is loaded.
 */
function logitBiasArg(value: string, previous: Record<string, number> | undefined): Record<string, number> {
  const m = /^\s*(\d+)\s*=\s*(\S+)\s*$/.exec(value);
  const bias = m ? Number(m[2]) : Number.NaN;
  if (!m || !Number.isFinite(bias) || Math.abs(bias) > MAX_LOGIT_BIAS)
    throw new InvalidValueError(`TOKEN_ID=BIAS with BIAS in [-${MAX_LOGIT_BIAS}, ${MAX_LOGIT_BIAS}]`, value);
  return { ...previous, [m[1]!]: bias };
}
