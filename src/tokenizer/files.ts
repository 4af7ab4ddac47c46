import { readFileSync } from "node:fs";

/** Thrown when a tokenizer file is missing, unreadable or malformed; the message names the file. */
export class TokenizerFileError extends Error {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`tokenizer file ${file}: ${reason}`);
    this.name = "TokenizerFileError";
  }
}

/** Reads a whole file, turning "not found" and friends into a TokenizerFileError naming it. */
export function readTokenizerFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TokenizerFileError(file, code === "ENOENT" ? "not found" : `cannot be read (${String(err)})`);
  }
}

/** Reads and parses a JSON file; malformed JSON is reported with the file's name. */
export function readJsonFile(file: string): unknown {
  const text = readTokenizerFile(file).toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new TokenizerFileError(file, `is not valid JSON (${(err as Error).message})`);
  }
}
