#!/usr/bin/env node
// Builds the native kernel addon with node-gyp. Runs on `npm install`. A failed build is not
// fatal: the engine then falls back to the TypeScript reference kernels with a visible warning,
// and `npx lamina doctor` says why. Set LAMINA_REQUIRE_NATIVE=1 to make a failed build an error.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
// Each addon has its own folder with a binding.gyp: native/kernels (the math), native/shm
// (shared-memory rings for the same-host transport).
const addonDirs = ["kernels", "shm"]
  .map((d) => path.join(root, "native", d))
  .filter((d) => existsSync(path.join(d, "binding.gyp")));
if (addonDirs.length === 0) process.exit(0);

function findNodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp))
    return process.env.npm_config_node_gyp;
  const candidates = [
    path.join(
      path.dirname(process.execPath),
      "../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js",
    ),
  ];
  try {
    candidates.push(createRequire(import.meta.url).resolve("node-gyp/bin/node-gyp.js"));
  } catch {}
  return candidates.find((c) => existsSync(c));
}

const gyp = findNodeGyp();
if (!gyp) {
  console.warn(
    "lamina: node-gyp not found; the native kernels were not built (TypeScript fallback will be used)",
  );
  process.exit(process.env.LAMINA_REQUIRE_NATIVE === "1" ? 1 : 0);
}
const env = { ...process.env };
// Build offline against the installed Node headers when they are there.
if (!env.npm_config_nodedir && existsSync("/usr/include/node/node_api.h")) env.npm_config_nodedir = "/usr";
const jobs = String(Math.max(1, Math.min(4, (await import("node:os")).availableParallelism())));
let failed = false;
for (const dir of addonDirs) {
  const res = spawnSync(process.execPath, [gyp, "rebuild", "--release", "-j", jobs], {
    cwd: dir,
    env,
    stdio: "inherit",
  });
  if (res.status !== 0) {
    failed = true;
    console.warn(
      `lamina: the native addon in native/${path.basename(dir)} failed to build; the TypeScript fallback will be used`,
    );
  }
}
if (failed && process.env.LAMINA_REQUIRE_NATIVE === "1") process.exit(1);
