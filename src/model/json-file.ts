import { readFileSync } from "node:fs";
import type { z } from "zod";

/** Reads and parses a JSON file; errors name the file. */
export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`${file}: cannot read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}

/** Validates `value` against `schema`; on failure the error names the file and each bad field. */
export function parseWithSchema<S extends z.ZodType>(file: string, schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => {
    const where = i.path.length > 0 ? i.path.join(".") : "(top level)";
    return `${where}: ${i.message}`;
  });
  throw new Error(`${file}: invalid: ${problems.join("; ")}`);
}
