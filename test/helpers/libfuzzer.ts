// Coverage-guided fuzzing of native decoders (libFuzzer with Address- and UndefinedBehaviorSanitizer,
// native/kernels/fuzz/): builds a target, runs it for a bounded time from a seed corpus, and fails with
// the fuzzer's output on a crash, a sanitizer report or a hang. Needs clang; .ci/run installs it. One
// target per test file: a build and a run take most of a file's time bound.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, it } from "node:test";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const FUZZ_SECONDS = 20;

/** Declares the test: `target` (native/kernels/fuzz/build.sh's name) survives FUZZ_SECONDS of `what`. */
export function fuzzTarget(target: string, what: string, seed?: Buffer): void {
  const tmp = mkdtempSync(path.join(tmpdir(), "lamina-fuzz-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  it(`survives ${FUZZ_SECONDS} s of coverage-guided ${what}`, { timeout: 110_000 }, () => {
    const clang = spawnSync("clang++", ["--version"], { encoding: "utf8" });
    assert.equal(clang.status, 0, "clang++ is needed for the fuzzer (Debian: apt-get install clang)");
    const bin = path.join(tmp, `${target}_fuzz`);
    const build = spawnSync(path.join(root, "native/kernels/fuzz/build.sh"), [bin, target], {
      encoding: "utf8",
    });
    assert.equal(build.status, 0, `fuzzer build failed:\n${build.stderr}`);
    const corpus = path.join(tmp, `${target}_corpus`);
    mkdirSync(corpus, { recursive: true });
    if (seed) writeFileSync(path.join(corpus, "seed"), seed);
    const run = spawnSync(
      bin,
      [
        corpus,
        `-max_total_time=${FUZZ_SECONDS}`,
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-seed=1",
        `-artifact_prefix=${tmp}/`,
      ],
      { encoding: "utf8", cwd: tmp, timeout: (FUZZ_SECONDS + 60) * 1000 },
    );
    assert.equal(run.status, 0, `the fuzzer found a failure:\n${run.stderr.slice(-4000)}`);
    const done = /Done (\d+) runs/.exec(run.stderr);
    assert.ok(done && Number(done[1]) > 1000, `the fuzzer ran too few inputs:\n${run.stderr.slice(-2000)}`);
  });
}
