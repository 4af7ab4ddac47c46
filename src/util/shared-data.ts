import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The project's shared data (models, traces, tokenizers) lives beside the repository in
 * ../shared, or wherever LAMINA_SHARED points. It is read there, never copied in.
 */
export function sharedRoot(): string {
  if (process.env.LAMINA_SHARED) return path.resolve(process.env.LAMINA_SHARED);
  // dist/src/util → repository root is three levels up; src/util → two. Try both.
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const up of ["../../..", "../.."]) {
    const repo = path.resolve(here, up);
    if (existsSync(path.join(repo, "package.json"))) return path.resolve(repo, "../shared");
  }
  return path.resolve(process.cwd(), "../shared");
}

/** Path of a file under shared/data; throws a clear error naming what is missing. */
export function sharedDataPath(...parts: string[]): string {
  const p = path.join(sharedRoot(), "data", ...parts);
  if (!existsSync(p)) {
    throw new Error(
      `shared data not found: ${p}\n` +
        "The tests and benchmarks read real models, tokenizers and traces from ../shared beside the repository; " +
        "set LAMINA_SHARED to its location if it lives elsewhere.",
    );
  }
  return p;
}
