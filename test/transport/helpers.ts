/** Shared helpers for the transport tests: sample messages of every dtype and shape, comparisons. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type {
  Message,
  ReceivedMessage,
  TensorArray,
  WireDType,
  WireTensor,
} from "../../src/transport/index.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** Builds native/shm if its addon is missing (the shm tests need it). */
export function ensureShmAddon(): void {
  const addon = path.join(repoRoot, "native/shm/build/Release/lamina_shm.node");
  if (existsSync(addon)) return;
  const gyp = path.join(
    path.dirname(process.execPath),
    "../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js",
  );
  const env = { ...process.env };
  if (!env.npm_config_nodedir && existsSync("/usr/include/node/node_api.h")) env.npm_config_nodedir = "/usr";
  const res = spawnSync(process.execPath, [gyp, "rebuild", "--release"], {
    cwd: path.join(repoRoot, "native/shm"),
    env,
    stdio: "pipe",
  });
  if (res.status !== 0 || !existsSync(addon))
    throw new Error(`could not build native/shm (run \`node scripts/build-native.mjs\`): ${res.stderr}`);
}

/** Names of this process's shm segments still present (with or without a LAMINA_SHM_TAG). */
export function leakedSegments(pid = process.pid): string[] {
  if (!existsSync("/dev/shm")) return [];
  const mine = new RegExp(`^lamina-(?:[A-Za-z][A-Za-z0-9]*-)?${pid}-`);
  return readdirSync("/dev/shm").filter((f) => mine.test(f));
}

/** Deterministic pseudo-random values (xorshift) so failures reproduce. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

export function makeTensor(dtype: WireDType, shape: number[], seed: number): WireTensor {
  let n = 1;
  for (const d of shape) n *= d;
  const r = rng(seed);
  let data: TensorArray;
  if (dtype === "f32") data = Float32Array.from({ length: n }, () => r() * 200 - 100);
  else if (dtype === "i32") data = Int32Array.from({ length: n }, () => Math.floor(r() * 2 ** 32) | 0);
  else data = Uint16Array.from({ length: n }, () => Math.floor(r() * 65536));
  return { dtype, shape, data };
}

export const DTYPES: WireDType[] = ["f32", "f16", "bf16", "i32"];
/** Scalars, empty tensors, odd sizes (padding), rank up to the maximum of 8. */
export const SHAPES: number[][] = [
  [],
  [0],
  [1],
  [3],
  [2, 3],
  [7, 5],
  [1, 4096],
  [2, 1, 3, 1, 2, 1, 1, 2],
  [0, 5],
];

/** One message per dtype holding every sample shape, plus ints and a control payload. */
export function sampleMessages(): Message[] {
  return DTYPES.map((dtype, k) => ({
    type: 10 + k,
    flags: 0x0123 + k,
    ints: [k, -1, 0x7fffffff, -0x80000000],
    control: k === 0 ? { layer: 3, note: "ünïcode ✓" } : undefined,
    tensors: SHAPES.map((shape, i) => makeTensor(dtype, shape, 1000 * k + i + 1)),
  }));
}

export function assertSameMessage(got: ReceivedMessage, want: Message): void {
  assert.equal(got.type, want.type);
  assert.equal(got.flags, want.flags ?? 0);
  assert.deepEqual(Array.from(got.ints), Array.from(want.ints ?? []));
  assert.deepEqual(got.control, want.control);
  const tensors = want.tensors ?? [];
  assert.equal(got.tensors.length, tensors.length);
  for (let i = 0; i < tensors.length; i++) {
    const g = got.tensors[i]!;
    const w = tensors[i]!;
    assert.equal(g.dtype, w.dtype, `tensor ${i} dtype`);
    assert.deepEqual(g.shape.slice(), w.shape.slice(), `tensor ${i} shape`);
    assert.equal(g.data.constructor, w.data.constructor, `tensor ${i} array type`);
    assert.ok(
      Buffer.from(g.data.buffer, g.data.byteOffset, g.data.byteLength).equals(
        Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength),
      ),
      `tensor ${i} data`,
    );
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when `cond()` holds, polling; rejects after timeoutMs with `what`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
