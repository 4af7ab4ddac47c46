import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Command } from "commander";
import { registerSimCommands } from "../../src/cli/sim-commands.js";

/** Runs the sim/plan commands in-process; returns stdout, stderr and the commander error code. */
function run(args: string[]): { out: string; err: string; code: string | null } {
  let out = "";
  let err = "";
  const program = new Command("lamina");
  program.exitOverride();
  program.configureOutput({ writeOut: (s) => void (out += s), writeErr: (s) => void (err += s) });
  registerSimCommands(program, { out: (s) => void (out += s) });
  for (const c of program.commands) {
    c.exitOverride();
    c.configureOutput({ writeOut: (s) => void (out += s), writeErr: (s) => void (err += s) });
    for (const sub of c.commands) {
      sub.exitOverride();
      sub.configureOutput({ writeOut: (s) => void (out += s), writeErr: (s) => void (err += s) });
    }
  }
  try {
    program.parse(args, { from: "user" });
    return { out, err, code: null };
  } catch (e) {
    return { out, err, code: (e as { code?: string }).code ?? "thrown" };
  }
}

describe("sim CLI", () => {
  let root: string;
  before(() => {
    root = mkdtempSync(path.join(tmpdir(), "lamina-sim-cli-"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("plan --json ranks configurations and names a winner", () => {
    const r = run([
      "plan",
      "--model",
      "llama3-70b",
      "--trace",
      "azure-code",
      "--max-requests",
      "1000",
      "--slo-tbt-ms",
      "120",
      "--devices",
      "H100,H20",
      "--max-configs",
      "8",
      "--json",
    ]);
    assert.equal(r.code, null, r.err);
    const j = JSON.parse(r.out);
    assert.equal(j.model, "llama3-70b");
    assert.ok(j.ranked.length > 0);
    assert.ok(j.winner.result.tokensPerDollar > 0);
  });

  it("sim (default run) prints the summary and writes JSON + SVG with --out", () => {
    const dir = mkdtempSync(path.join(root, "run-"));
    const r = run([
      "sim",
      "--model",
      "llama3-70b",
      "--trace",
      "synthetic:requests=300,rate=inf,prompt=1000,output=100,seed=2",
      "--placement",
      "lamina",
      "--a",
      "2",
      "--b",
      "4",
      "--decode-only",
      "--out",
      dir,
    ]);
    assert.equal(r.code, null, r.err);
    assert.match(r.out, /Lamina\(2,4\) H100\+H20/);
    assert.match(r.out, /throughput \d+ tok\/s/);
    const j = JSON.parse(readFileSync(path.join(dir, "sim.json"), "utf8"));
    assert.equal(j.completed, 300);
    assert.match(readFileSync(path.join(dir, "sim-tbt.svg"), "utf8"), /^<svg /);
  });

  it("sim bandwidth gives Lamina's Fig. 4 curve", () => {
    const dir = mkdtempSync(path.join(root, "bw-"));
    const r = run([
      "sim",
      "bandwidth",
      "--model",
      "llama3-70b",
      "--context",
      "4096",
      "--max-batch",
      "320",
      "--out",
      dir,
      "--json",
    ]);
    assert.equal(r.code, null, r.err);
    const j = JSON.parse(r.out);
    assert.equal(j.modelTp, 2);
    assert.ok(j.series[0].points.length > 10);
    assert.ok(existsSync(path.join(dir, "bandwidth.svg")));
  });

  it("bad flags get errors naming the flag", () => {
    let r = run(["plan", "--model", "llama3-70b", "--trace", "azure-conv", "--slo-tbt-ms", "-5"]);
    assert.equal(r.code, "commander.invalidArgument");
    assert.match(r.err, /--slo-tbt-ms must be a number > 0 \(got "-5"\)/);
    r = run(["plan", "--model", "llama3-70b", "--slo-tbt-ms", "50"]);
    assert.equal(r.code, "commander.missingMandatoryOptionValue");
    assert.match(r.err, /--trace/);
    r = run(["sim", "--model", "llama3-70b", "--trace", "azure-conv", "--placement", "ring"]);
    assert.match(r.err, /--placement must be one of homogeneous, lamina, pd, adrenaline/);
    r = run(["sim", "--model", "llama3-70b", "--trace", "azure-conv", "--tp", "1.5"]);
    assert.match(r.err, /--tp must be an integer ≥ 1 \(got "1\.5"\)/);
    r = run([
      "sim",
      "--model",
      "llama3-70b",
      "--trace",
      "azure-conv",
      "--placement",
      "adrenaline",
      "--offload",
      "2",
    ]);
    assert.match(r.err, /--offload must be "auto" or a ratio/);
    r = run([
      "sim",
      "--model",
      "llama3-70b",
      "--trace",
      "azure-conv",
      "--device",
      "H100",
      "--tp",
      "4",
      "--b",
      "4",
    ]);
    assert.match(r.err, /--b applies to --placement lamina, not homogeneous/);
  });

  it("bad names and files become clean errors, not crashes", () => {
    let r = run(["plan", "--model", "gpt-9", "--trace", "azure-conv", "--slo-tbt-ms", "50"]);
    assert.match(r.err, /unknown model "gpt-9"/);
    r = run(["sim", "--model", "llama3-70b", "--trace", "nope.csv"]);
    assert.match(r.err, /trace "nope\.csv" not found/);
    r = run(["sim", "--model", "llama3-70b", "--trace", "azure-conv", "--device", "L40S"]);
    assert.match(r.err, /do not fit on 1×L40S/);
    r = run(["sim", "--model", "llama3-70b", "--trace", "synthetic:requests=10,bogus=1"]);
    assert.match(r.err, /unknown key "bogus"/);
    const dir = mkdtempSync(path.join(root, "profile-"));
    writeFileSync(path.join(dir, "p.json"), JSON.stringify({ version: 1, name: "x" }));
    r = run(["sim", "--model", "llama3-70b", "--trace", "azure-conv", "--profile", path.join(dir, "p.json")]);
    assert.match(r.err, /device profile .*p\.json/);
  });

  it("sim catalog lists what the simulator knows", () => {
    const r = run(["sim", "catalog"]);
    assert.equal(r.code, null, r.err);
    for (const name of ["H100", "H20", "A100-80GB", "L40S", "CPU-SPR-2S", "llama3-70b", "rdma-400g-fhbn"])
      assert.match(r.out, new RegExp(name));
  });
});
