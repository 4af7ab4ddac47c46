#!/usr/bin/env node
// Builds the native kernel addon with node-gyp. Runs on `npm install`. A failed build is not
// fatal: the engine then falls back to the TypeScript reference kernels with a visible warning,
// and `npx lamina doctor` says why. Set LAMINA_REQUIRE_NATIVE=1 to make a failed build an error.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
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
/** Newest modification time of an addon's sources (binding.gyp and everything under src/). */
function sourcesMtime(dir) {
  let newest = statSync(path.join(dir, "binding.gyp")).mtimeMs;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(path.join(dir, "src"));
  return newest;
}

/**
 * Whether the addon's build is newer than its sources. `npx lamina` in a fresh checkout installs
 * the package into npx's cache, which runs this script again: an up-to-date build is kept then
 * instead of rebuilt. LAMINA_REBUILD_NATIVE=1 forces a rebuild.
 */
function upToDate(dir) {
  if (process.env.LAMINA_REBUILD_NATIVE === "1") return false;
  const release = path.join(dir, "build", "Release");
  if (!existsSync(release)) return false;
  const built = readdirSync(release).filter((f) => f.endsWith(".node"));
  if (built.length === 0) return false;
  const src = sourcesMtime(dir);
  return built.every((f) => statSync(path.join(release, f)).mtimeMs > src);
}

let failed = false;
for (const dir of addonDirs) {
  if (upToDate(dir)) {
    console.log(`lamina: native/${path.basename(dir)} is up to date (LAMINA_REBUILD_NATIVE=1 rebuilds it)`);
    continue;
  }
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
