// Loading and running the native kernels: variant override through the environment (in child
// processes), worker threads on shared memory, backend selection, and argument errors.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { kernelReport, loadKernelBackend } from "../../src/kernels/index.js";
import { NativeBackend } from "../../src/kernels/native.js";
import { ReferenceBackend } from "../../src/kernels/reference.js";
import { assertClose, emptyCache, randomF32, randomTensor, rng } from "./fixtures.js";
import { forEachVariant, nativeKernels } from "./native-setup.js";

const ref = new ReferenceBackend();
const native = nativeKernels();
const indexUrl = new URL("../../src/kernels/index.js", import.meta.url).href;

/** Runs a bf16 matmul in a fresh process with the given environment; returns its report. */
function childMatmul(env: Record<string, string>): {
  variant: string;
  reason: string;
  bf16Dot: boolean;
  out: number[];
} {
  const script = `
    import { loadKernelBackend } from ${JSON.stringify(indexUrl)};
    const b = loadKernelBackend({ backend: "native" });
    let s = 7;
    const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    const w = new Uint16Array(19 * 45).map(() => (new Uint32Array(new Float32Array([rand()]).buffer)[0] >>> 16));
    const x = new Float32Array(3 * 45).map(rand);
    const out = new Float32Array(3 * 19);
    b.matmul(out, x, b.prepareWeight({ name: "w", dtype: "bf16", shape: [19, 45], data: w }), 3);
    const i = b.info();
    console.log(JSON.stringify({ variant: i.variant, reason: i.reason, bf16Dot: i.bf16Dot, out: Array.from(out) }));
  `;
  // spawnSync blocks the event loop, so no test time-out can fire meanwhile: it carries its own.
  const res = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 30_000,
    killSignal: "SIGKILL",
  });
  assert.equal(res.status, 0, `${res.error ?? `exit ${res.signal ?? res.status}`}:\n${res.stderr}`);
  return JSON.parse(res.stdout.trim().split("\n").at(-1)!);
}

test("LAMINA_KERNEL_VARIANT forces each supported variant, and all agree", () => {
  const { supported } = native.info();
  const results = supported.map((v) => ({ v, r: childMatmul({ LAMINA_KERNEL_VARIANT: v }) }));
  // Variants that multiply bf16 weights the same way agree to fp32 summation order; one with bf16
  // dot products (activations rounded to bf16, unit roundoff 2^-8) agrees with the others to
  // within that rounding.
  const first = (dot: boolean) => results.find((x) => x.r.bf16Dot === dot)?.r.out;
  for (const { v, r } of results) {
    assert.equal(r.variant, v);
    assert.match(r.reason, /forced by LAMINA_KERNEL_VARIANT/);
    assertClose(r.out, first(r.bf16Dot)!, `variant ${v}`);
    assertClose(r.out, results.at(-1)!.r.out, `variant ${v} against ${results.at(-1)!.v}`, 8e-3);
  }
  const bogus = childMatmul({ LAMINA_KERNEL_VARIANT: "sse9" });
  assert.equal(bogus.variant, supported[0]);
  assert.match(bogus.reason, /sse9 is unknown or unsupported/);
});

test("the addon loads in worker threads and works on SharedArrayBuffer data", {
  timeout: 30_000,
}, async () => {
  const rand = rng(5);
  const w = randomTensor("w", "f16", [300, 259], rand);
  const nTokens = 5;
  const x = randomF32(nTokens * 259, rand);
  const expected = new Float32Array(nTokens * 300);
  ref.matmul(expected, x, ref.prepareWeight(w), nTokens);
  const probe = fileURLToPath(new URL("./worker-probe.js", import.meta.url));
  const outs = [0, 1].map(() => new Float32Array(new SharedArrayBuffer(nTokens * 300 * 4)));
  const variants = await Promise.all(
    outs.map(
      (out) =>
        new Promise<string>((resolve, reject) => {
          const worker = new Worker(probe, { workerData: { w, x, out, nTokens } });
          worker.once("message", (m: { variant: string }) => resolve(m.variant));
          worker.once("error", reject);
        }),
    ),
  );
  for (const [i, out] of outs.entries()) assertClose(out, expected, `worker ${i}`);
  assert.deepEqual(variants, [native.info().variant, native.info().variant]);
  // The main thread's instance is unaffected by the workers' instances being torn down.
  const out = new Float32Array(nTokens * 300);
  native.matmul(out, x, native.prepareWeight(w), nTokens);
  assertClose(out, expected, "main thread after workers");
});

test("loadKernelBackend honours LAMINA_BACKEND and validates its options", () => {
  const saved = process.env.LAMINA_BACKEND;
  try {
    delete process.env.LAMINA_BACKEND;
    assert.ok(loadKernelBackend() instanceof NativeBackend, "auto picks native when it loads");
    assert.ok(loadKernelBackend({ backend: "reference" }) instanceof ReferenceBackend);
    assert.throws(() => loadKernelBackend({ threads: 0 }), RangeError);
    process.env.LAMINA_BACKEND = "reference";
    assert.ok(loadKernelBackend({ backend: "native" }) instanceof ReferenceBackend, "the environment wins");
    assert.equal(kernelReport().variant, "reference");
    process.env.LAMINA_BACKEND = "gpu";
    assert.throws(() => loadKernelBackend(), /LAMINA_BACKEND must be one of/);
  } finally {
    if (saved === undefined) delete process.env.LAMINA_BACKEND;
    else process.env.LAMINA_BACKEND = saved;
  }
  const r = kernelReport();
  assert.equal(r.variant, native.info().variant);
  assert.ok(r.addonPath?.endsWith("lamina_kernels.node"));
  assert.ok(r.threads >= 1);
  assert.ok(Array.isArray(r.cpu));
  // What `lamina doctor` prints: every variant this CPU runs, and how bf16 products multiply.
  assert.deepEqual(r.supported, native.info().supported);
  assert.equal(/vdpbf16ps/.test(r.bf16Products), native.info().bf16Dot);
  assert.equal(/AMX tiles/.test(r.bf16Products), native.info().tiles);
  // and how grouped-query attention multiplies a bf16 cache (vdpbf16ps on avx512bf16 only).
  assert.equal(/vdpbf16ps/.test(r.bf16Attention), native.info().bf16DotAttention);
  assert.equal(native.info().bf16DotAttention, native.info().variant === "avx512bf16");
  // and that prompt chunks on a bf16 cache go through AMX tiles where the variant has them.
  assert.equal(/through AMX/.test(r.bf16Attention), native.info().tiles);
  // and how decode attention's KV rows reach the cores (asked for ahead in software on Intel CPUs).
  assert.equal(/ahead in software \(this CPU's default/.test(r.reads), native.info().readAhead);
  // Grouped queries through vdpbf16ps ask ahead on every CPU by default.
  assert.equal(native.info().readAheadBf16Dot, true);
  if (!native.info().readAhead)
    assert.equal(/grouped queries on bf16 caches/.test(r.reads), native.info().bf16DotAttention, r.reads);
  // The start-up log's kernel line (describe) says so too.
  assert.equal(/weights and KV rows asked for ahead/.test(native.describe()), native.info().readAhead);
  if (!process.env.LAMINA_KERNEL_VARIANT) {
    // A CPU with AVX-512-BF16 gets the variant that uses it, with AMX tiles where the CPU has them
    // and the OS grants them to this process.
    assert.equal(r.supported.includes("avx512bf16"), r.cpu.includes("avx512bf16"));
    assert.equal(r.supported.includes("amxbf16"), r.cpu.includes("amx-bf16"));
    if (r.cpu.includes("amx-bf16")) assert.equal(r.variant, "amxbf16");
    else if (r.cpu.includes("avx512bf16")) assert.equal(r.variant, "avx512bf16");
  }
  // The stand-ins for other CPUs, selectable by name and never chosen by themselves: the tiles'
  // software twin wherever AVX-512-BF16 runs, and avx512 and avx2 without their VNNI paths where the
  // CPU has them.
  const { emulated, supported } = native.info();
  assert.deepEqual(emulated, [
    ...(r.cpu.includes("avx512bf16") ? ["amxbf16-emulated"] : []),
    ...(r.cpu.includes("avx512vnni") ? ["avx512-novnni"] : []),
    ...(r.cpu.includes("avxvnni") ? ["avx2-novnni"] : []),
  ]);
  for (const v of emulated) assert.ok(!supported.includes(v), v);
});

test("native entry points throw a TypeError/RangeError naming the bad argument", () => {
  const w = native.prepareWeight(randomTensor("w", "f32", [4, 8], rng(6)));
  assert.throws(() => native.matmul(new Float32Array(3), new Float32Array(8), w, 1), {
    name: "TypeError",
    message: /matmul: out has 3 elements, needs at least 4/,
  });
  assert.throws(
    () => native.matmul(new Float32Array(4), new Uint16Array(8) as unknown as Float32Array, w, 1),
    { name: "TypeError", message: /matmul: x must be a Float32Array/ },
  );
  assert.throws(
    () =>
      native.matmul(
        new Float32Array(4),
        new Float32Array(8),
        ref.prepareWeight(randomTensor("w", "f32", [4, 8], rng(6))),
        1,
      ),
    {
      name: "TypeError",
      message: /not prepared by the native backend/,
    },
  );
  const table = randomTensor("embed", "bf16", [10, 4], rng(7));
  assert.throws(() => native.embedding(new Float32Array(8), table, new Int32Array([3, 10]), 2), {
    name: "RangeError",
    message: /embedding: tokens\[1\] = 10/,
  });
  const cache = emptyCache("f16", 2, 4, 1, 8);
  assert.throws(
    () => native.kvWrite(cache, new Float32Array(8), new Float32Array(8), new Int32Array([8]), 1),
    {
      name: "RangeError",
      message: /kvWrite: slots\[0\] = 8/,
    },
  );
  const mislabeled = { ...cache, k: new Float32Array(64) };
  assert.throws(
    () => native.kvWrite(mislabeled, new Float32Array(8), new Float32Array(8), new Int32Array([0]), 1),
    {
      name: "TypeError",
      message: /kvWrite: cache.k must be a Uint16Array/,
    },
  );
  const cos = new Float32Array(4 * 2);
  assert.throws(() => native.rope(new Float32Array(4), new Int32Array([4]), 1, 1, 4, cos, cos), {
    name: "RangeError",
    message: /rope: positions\[0\] = 4/,
  });
  assert.throws(() => native.rope(new Float32Array(4), new Int32Array([0]), 1, 1, 4, cos, cos, 6), {
    name: "RangeError",
    message: /rope: rotaryDim must be even and at most headDim \(4\), got 6/,
  });
  assert.throws(() => native.setThreads(0), { name: "TypeError", message: /setThreads: n/ });
  assert.throws(() => native.selectVariant("mmx"), { name: "RangeError", message: /mmx/ });
});

test("streamRead sums its input (the bandwidth yardstick reads every element once)", () => {
  const x = new Float32Array(100_003).map((_, i) => i % 7);
  let expected = 0;
  for (const v of x) expected += v;
  assert.equal(native.streamRead(x), expected);
  assert.equal(native.streamRead(x.subarray(0, 5)), 0 + 1 + 2 + 3 + 4);
});

test("the arithmetic yardsticks count their operations, and exist only where the instruction does", () => {
  // peakOf runs 16 tasks a pool thread, each `rounds` rounds of its chains: 10 FMA chains of W
  // lanes (2 flops a lane), 24 vdpbf16ps chains (64 operations each), 24 byte-product chains on
  // 512-bit vectors (128 each) or 12 on 256-bit ones (64 each).
  const rounds = 1000;
  const tasks = native.info().threads * 16 * rounds;
  forEachVariant(
    native,
    (v) => {
      const width =
        v.startsWith("avx512") || v.startsWith("amx") ? 16 : v === "avx2" || v === "avx2-novnni" ? 8 : 4;
      assert.equal(native.fmaPeak(rounds), tasks * 10 * width * 2, `${v} fmaPeak`);
      // vpdpbusd or vpmaddubsw, the same operations a round: 24 chains of 16 lanes, or 12 of 8.
      const byteOps = width === 16 ? tasks * 24 * 128 : width === 8 ? tasks * 12 * 64 : 0;
      assert.equal(native.byteDotPeak(rounds), byteOps, `${v} byteDotPeak`);
      const bf16 = v === "avx512bf16" || v.startsWith("amxbf16");
      assert.equal(native.bf16DotPeak(rounds), bf16 ? tasks * 24 * 64 : 0, `${v} bf16DotPeak`);
    },
    { emulated: true },
  );
});
