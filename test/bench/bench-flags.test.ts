import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

// The benches parse their flags through benchArgs (bench/common/flags.ts): a user who asks for help
// gets the flags, and one who mistypes a flag gets a line naming it and status 2, not a stack trace.
const bench = (rel: string) => fileURLToPath(new URL(`../../bench/${rel}`, import.meta.url));

function run(rel: string, args: string[]) {
  return spawnSync(process.execPath, [bench(rel), ...args], { encoding: "utf8", timeout: 60_000 });
}

describe("bench command lines", () => {
  for (const rel of ["kernels/attention.js", "disagg/serving-tpot.js"]) {
    it(`${rel} --help lists its flags with their defaults and exits 0`, () => {
      const r = run(rel, ["--help"]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^usage: node \S+ \[flags\]/);
      assert.match(r.stdout, /\n {2}--reps <value> {2}\(default: \d+\)/);
    });

    it(`${rel} with an unknown flag names it, lists the flags and exits 2`, () => {
      const r = run(rel, ["--bogus-flag", "1"]);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /Unknown option '--bogus-flag'/);
      assert.match(r.stderr, /\n {2}--reps <value>/);
      assert.doesNotMatch(r.stderr, /\bat (?:file|node):/, "no stack trace");
    });
  }

  it("a flag that takes a value but got none is a usage error too", () => {
    const r = run("kernels/attention.js", ["--ctx"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--ctx/);
  });
});
