import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { selectChatTemplate } from "./chat-template.js";
import { readJsonFile, TokenizerFileError } from "./files.js";

/** What we use from tokenizer_config.json (and the chat-template files that may sit beside it). */
export interface HfTokenizerConfig {
  /** bos_token, eos_token, unk_token, pad_token as strings; the chat template sees these. */
  readonly specialTokens: Readonly<Record<string, string>>;
  /** add_bos_token / add_eos_token when the file says so explicitly; undefined leaves it to the post-processor. */
  readonly addBos: boolean | undefined;
  readonly addEos: boolean | undefined;
  readonly chatTemplate: string | null;
  /** The file the chat template came from, for error messages. */
  readonly chatTemplateOrigin: string;
  /** The file as parsed ({} when absent), for the tokenization library. */
  readonly raw: Readonly<Record<string, unknown>>;
}

const SPECIAL_TOKEN_KEYS = ["bos_token", "eos_token", "unk_token", "pad_token"] as const;

/** A special token is written either as a string or as an AddedToken object {content, …}. */
function tokenString(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

export function readHfTokenizerConfig(dir: string): HfTokenizerConfig {
  const file = path.join(dir, "tokenizer_config.json");
  // Some repositories ship only tokenizer.json; then everything comes from its post-processor.
  const raw = existsSync(file) ? readJsonFile(file) : {};
  const parsed = parseHfTokenizerConfig(raw, file);
  // Newer checkpoints keep the template in its own file.
  if (parsed.chatTemplate === null) {
    const jinjaFile = path.join(dir, "chat_template.jinja");
    const jsonFile = path.join(dir, "chat_template.json");
    if (existsSync(jinjaFile)) {
      return { ...parsed, chatTemplate: readFileSync(jinjaFile, "utf8"), chatTemplateOrigin: jinjaFile };
    }
    if (existsSync(jsonFile)) {
      const j = readJsonFile(jsonFile) as { chat_template?: unknown } | null;
      return {
        ...parsed,
        chatTemplate: selectChatTemplate(j?.chat_template, jsonFile),
        chatTemplateOrigin: jsonFile,
      };
    }
  }
  return parsed;
}

/**
 * A tokenizer_config.json-shaped object (read from a file, or built from another format's
 * metadata); `file` names its origin in error messages.
 */
export function parseHfTokenizerConfig(raw: unknown, file: string): HfTokenizerConfig {
  if (!raw || typeof raw !== "object" || Array.isArray(raw))
    throw new TokenizerFileError(file, "is not a JSON object");
  const cfg = raw as Record<string, unknown>;

  const specialTokens: Record<string, string> = {};
  for (const key of SPECIAL_TOKEN_KEYS) {
    const s = tokenString(cfg[key]);
    if (s !== undefined) specialTokens[key] = s;
  }
  const flag = (key: string): boolean | undefined =>
    typeof cfg[key] === "boolean" ? (cfg[key] as boolean) : undefined;

  let chatTemplate: string | null;
  try {
    chatTemplate = selectChatTemplate(cfg.chat_template, file);
  } catch (err) {
    throw new TokenizerFileError(file, (err as Error).message);
  }
  return {
    specialTokens,
    addBos: flag("add_bos_token"),
    addEos: flag("add_eos_token"),
    chatTemplate,
    chatTemplateOrigin: file,
    raw: cfg,
  };
}
