import path from "node:path";
import { Tokenizer as HfLibraryTokenizer } from "@huggingface/tokenizers";
import { ChatTemplate } from "./chat-template.js";
import { readJsonFile, TokenizerFileError } from "./files.js";
import { type HfTokenizerConfig, readHfTokenizerConfig } from "./hf-config.js";
import { describeDecoder, HfTokenPieces } from "./hf-pieces.js";
import type {
  ChatMessage,
  ChatTemplateOptions,
  DecodeOptions,
  EncodeOptions,
  Tokenizer,
  TokenPieces,
} from "./types.js";

/**
 * A Hugging Face tokenizer directory (tokenizer.json + tokenizer_config.json) behind our Tokenizer
 * interface. Tokenization itself is @huggingface/tokenizers; this class decides the special
 * prefix/suffix, renders chat templates and exposes the vocabulary as bytes for streaming.
 */
class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  readonly pieces: TokenPieces | undefined;
  readonly hasChatTemplate: boolean;
  readonly chatTemplateText?: string;
  private readonly prefixIds: readonly number[];
  private readonly suffixIds: readonly number[];
  private readonly template: ChatTemplate | null;

  constructor(
    private readonly lib: HfLibraryTokenizer,
    tokenizerJson: Record<string, unknown>,
    private readonly config: HfTokenizerConfig,
    private readonly dir: string,
  ) {
    const added = lib.get_added_tokens_decoder();
    let maxId = -1;
    for (const id of lib.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    const idOf = (key: string): number | null => {
      const s = config.specialTokens[key];
      return s === undefined ? null : (lib.token_to_id(s) ?? null);
    };
    this.bosTokenId = idOf("bos_token");
    const eos = idOf("eos_token");
    this.eosTokenIds = eos === null ? [] : [eos];

    [this.prefixIds, this.suffixIds] = this.specialAffixes();

    const shape = describeDecoder(tokenizerJson.decoder);
    this.pieces = shape
      ? new HfTokenPieces(shape, (id) => lib.id_to_token(id), added, this.vocabSize)
      : undefined;

    this.template = config.chatTemplate
      ? new ChatTemplate(config.chatTemplate, config.chatTemplateOrigin, config.specialTokens)
      : null;
    this.hasChatTemplate = this.template !== null;
    if (this.template) this.chatTemplateText = this.template.source;
  }

  /**
   * The ids the post-processor wraps a text with (found by encoding a probe), corrected by an
   * explicit add_bos_token / add_eos_token in tokenizer_config.json, as transformers does for Llama.
   */
  private specialAffixes(): [number[], number[]] {
    const probe = "a";
    const bare = this.lib.encode(probe, { add_special_tokens: false }).ids;
    const full = this.lib.encode(probe, { add_special_tokens: true }).ids;
    const at = indexOfRun(full, bare);
    let prefix: number[] = at < 0 ? [] : full.slice(0, at);
    let suffix: number[] = at < 0 ? [] : full.slice(at + bare.length);
    const bos = this.bosTokenId;
    const eos = this.eosTokenIds[0] ?? null;
    if (this.config.addBos === true && bos !== null && prefix[0] !== bos) prefix = [bos, ...prefix];
    if (this.config.addBos === false) prefix = prefix.filter((id) => id !== bos);
    if (this.config.addEos === true && eos !== null && suffix.at(-1) !== eos) suffix = [...suffix, eos];
    if (this.config.addEos === false) suffix = suffix.filter((id) => id !== eos);
    return [prefix, suffix];
  }

  encode(text: string, options?: EncodeOptions): number[] {
    const ids = text === "" ? [] : this.lib.encode(text, { add_special_tokens: false }).ids;
    if (options?.addSpecialTokens === false) return ids;
    if (this.prefixIds.length === 0 && this.suffixIds.length === 0) return ids;
    return [...this.prefixIds, ...ids, ...this.suffixIds];
  }

  decode(ids: readonly number[], options?: DecodeOptions): string {
    // The library throws on an empty list and maps unknown ids to undefined; Hugging Face's Rust
    // tokenizer skips ids outside the vocabulary, and so do we.
    const known = ids.filter((id) => Number.isInteger(id) && id >= 0 && id < this.vocabSize);
    if (known.length === 0) return "";
    return this.lib.decode(known, {
      skip_special_tokens: options?.skipSpecialTokens ?? true,
      // Text as generated: no "clean-up" of spaces before punctuation, so decode(encode(x)) == x.
      clean_up_tokenization_spaces: false,
    });
  }

  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string {
    if (!this.template) {
      throw new Error(
        `tokenizer in ${this.dir} has no chat template (no chat_template in tokenizer_config.json, ` +
          "no chat_template.jinja); send a plain completion prompt instead",
      );
    }
    return this.template.render(messages, options?.addGenerationPrompt ?? true, options?.variables);
  }
}

function indexOfRun(haystack: readonly number[], needle: readonly number[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * Loads a Hugging Face tokenizer directory: tokenizer.json (required) and tokenizer_config.json
 * (special tokens, add_bos_token, chat_template; optional). Errors name the offending file.
 */
export function loadHfTokenizer(dir: string): Tokenizer {
  const file = path.join(dir, "tokenizer.json");
  const json = readJsonFile(file);
  if (!json || typeof json !== "object" || !("model" in json)) {
    throw new TokenizerFileError(file, 'is not a Hugging Face tokenizer (no "model" section)');
  }
  return createHfTokenizer(json as Record<string, unknown>, readHfTokenizerConfig(dir), file);
}

/**
 * A tokenizer from an in-memory tokenizer.json object and tokenizer config (e.g. built from a
 * GGUF file's vocabulary); `origin` names where they came from in error messages.
 */
export function createHfTokenizer(
  json: Record<string, unknown>,
  config: HfTokenizerConfig,
  origin: string,
): Tokenizer {
  const file = origin;
  let lib: HfLibraryTokenizer;
  try {
    lib = new HfLibraryTokenizer(json, config.raw);
  } catch (err) {
    throw new TokenizerFileError(
      file,
      `cannot be loaded by @huggingface/tokenizers (${(err as Error).message})`,
    );
  }
  return new HfTokenizer(lib, json, config, path.dirname(origin));
}
