// Coverage-guided fuzzing of the attention worker's native data plane (libFuzzer with Address-
// and UndefinedBehaviorSanitizer, native/kernels/fuzz/): hostile postings for a bounded time.
// A crash, a sanitizer report or a hang fails the test with the fuzzer's output. Needs clang;
// .ci/run installs it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const tmp = mkdtempSync(path.join(tmpdir(), "lamina-fuzz-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const SECONDS = 20;

describe("native data plane under libFuzzer", () => {
  it(`survives ${SECONDS} s of coverage-guided postings`, { timeout: 240_000 }, () => {
    const clang = spawnSync("clang++", ["--version"], { encoding: "utf8" });
    assert.equal(clang.status, 0, "clang++ is needed for the fuzzer (Debian: apt-get install clang)");
    const bin = path.join(tmp, "dp_fuzz");
    const build = spawnSync(path.join(root, "native/kernels/fuzz/build.sh"), [bin], { encoding: "utf8" });
    assert.equal(build.status, 0, `fuzzer build failed:\n${build.stderr}`);
    const run = spawnSync(
      bin,
      [
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
