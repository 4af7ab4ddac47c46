#!/usr/bin/env node
// The `lamina` command: loads the compiled CLI. `npm install` compiles it (the prepare script).
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist/src/cli/main.js");
if (!existsSync(main)) {
  console.error(
    "lamina: the CLI is not built yet; run `npm install` (or `npm run build`) in the project first",
  );
  process.exit(1);
}
await import(pathToFileURL(main).href);
