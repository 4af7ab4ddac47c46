// Coverage-guided fuzzing of the attention worker's native data plane (libFuzzer with Address-
// and UndefinedBehaviorSanitizer, native/kernels/fuzz/): hostile postings into its segment, and
// hostile frames from two peers into its TCP bridge, and hostile model-plane frames into a model
// worker's copy of the plane (plane_net.cpp), each for a bounded time.
// A crash, a sanitizer report or a hang fails the test with the fuzzer's output. Needs clang;
// .ci/run installs it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const tmp = mkdtempSync(path.join(tmpdir(), "lamina-fuzz-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const SECONDS = 20;

/**
 * A well-formed exchange for the TCP target to start from (its geometry: 2 micro-batches, 8 tokens,
 * 4 sequences, 4 blocks each, q 16 and k/v 8 floats a token, 2 layers): the front end's STEP, then a
 * model worker's q and k/v of both layers, each KV asking for its OUT. Input layout: the front end's
 * stream length (u16), its stream, the model worker's.
 */
function tcpSeed(): Buffer {
  const frame = (kind: number, layer: number, nSeqs: number, payload: Int32Array | Float32Array) => {
    const head = Buffer.alloc(28);
    for (const [i, v] of [0x4650444c, kind, 0, layer, 1, nSeqs, payload.byteLength].entries())
      head.writeInt32LE(v, 4 * i);
    return Buffer.concat([head, Buffer.from(payload.buffer)]);
  };
  const step = frame(1, 0, 1, Int32Array.from([0, 1, 0, 0, -1, -1, -1]));
  const layers = [0, 1].flatMap((l) => [
    frame(2, l, 0, new Float32Array(16).fill(0.5)),
    frame(3, l, 1, new Float32Array(16).fill(0.25)),
  ]);
  const split = Buffer.alloc(2);
  split.writeUInt16LE(step.length);
  return Buffer.concat([split, step, ...layers]);
}

/**
 * Model-plane frames for the plane_net target to start from (its segment: 4096 bytes): one that
 * writes a range, stores a counter under a guard and rings a doorbell, and one behind its guard.
 */
function planeSeed(): Buffer {
  const frame = (guardVal: number) => {
    const head = Buffer.alloc(32 + 8 + 8);
    for (const [i, v] of [0x4e504c4d, 1, 1, 1, 256, guardVal, 128, 16, 1024, 16, 64, 7].entries())
      head.writeInt32LE(v, 4 * i);
    return Buffer.concat([head, Buffer.alloc(16, 3)]);
  };
  return Buffer.concat([frame(0), frame(-1)]);
}

describe("native data plane under libFuzzer", () => {
  const targets = [
    ["dataplane", "postings into a worker's segment"],
    ["dataplane_tcp", "frames from a front end and a model worker into the TCP bridge"],
    ["plane_net", "model-plane frames into a model worker's copy of the plane"],
  ] as const;
  for (const [target, what] of targets)
    it(`survives ${SECONDS} s of coverage-guided ${what}`, { timeout: 240_000 }, () => {
      const clang = spawnSync("clang++", ["--version"], { encoding: "utf8" });
      assert.equal(clang.status, 0, "clang++ is needed for the fuzzer (Debian: apt-get install clang)");
      const bin = path.join(tmp, `${target}_fuzz`);
      const build = spawnSync(path.join(root, "native/kernels/fuzz/build.sh"), [bin, target], {
        encoding: "utf8",
      });
      assert.equal(build.status, 0, `fuzzer build failed:\n${build.stderr}`);
      const corpus = path.join(tmp, `${target}_corpus`);
      mkdirSync(corpus, { recursive: true });
      if (target === "dataplane_tcp") writeFileSync(path.join(corpus, "exchange"), tcpSeed());
      if (target === "plane_net") writeFileSync(path.join(corpus, "frames"), planeSeed());
      const run = spawnSync(
        bin,
        [
          corpus,
          `-max_total_time=${SECONDS}`,
          "-timeout=10",
          "-rss_limit_mb=2048",
          "-seed=1",
          `-artifact_prefix=${tmp}/`,
        ],
        { encoding: "utf8", cwd: tmp, timeout: (SECONDS + 60) * 1000 },
      );
      assert.equal(run.status, 0, `the fuzzer found a failure:\n${run.stderr.slice(-4000)}`);
      const done = /Done (\d+) runs/.exec(run.stderr);
      assert.ok(done && Number(done[1]) > 1000, `the fuzzer ran too few inputs:\n${run.stderr.slice(-2000)}`);
    });
});
