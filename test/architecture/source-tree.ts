import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's src/ folder (tests run from dist/test/…, the sources stay where they are). */
export const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../src");

/** Every TypeScript source under src/, as paths relative to it. */
export function sourceFiles(dir = SRC): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith(".ts")) out.push(path.relative(SRC, p));
  }
  return out.sort();
}

export function readSource(rel: string): string {
  return readFileSync(path.join(SRC, rel), "utf8");
}
