#!/usr/bin/env node
// Runs the compiled test files (dist/test/**/*.test.js) one at a time with Node's built-in test
// runner and the spec reporter, and after each file checks what it left behind:
//   - processes: every process started for a file carries LAMINA_SHM_TAG=<its tag> in its
//     environment; any still running once the file has ended is a leak (reported, then killed);
//   - shared memory: src/transport/shm-channel.ts puts the tag in its segment names, so a
//     /dev/shm/lamina-<tag>-* entry left after the file is a segment it leaked (reported, removed);
//     the same goes for network namespaces named lamina-<tag>-* (the multi-host test's "hosts");
//   - temporary files: each file gets a private TMPDIR (os.tmpdir() follows it); entries named
//     with the project's prefix left in it are a leak. Other entries are listed but not failed
//     (they are not ours to name); the folder is removed either way.
// Because the tag and the temporary folder are private to one file of one run, other programs
// (or another run of this script) on the same machine never set the checks off.
//
// Optional arguments filter files by substring: `node scripts/run-tests.mjs sampler kernels`.
// The last line is `N passed, N failed, N skipped`; the exit status is non-zero on any failed
// test, any leak and any file that did not finish.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const testRoot = path.join(root, "dist", "test");

/**
 * Node 20 applies --test-timeout to each file's process as a whole (later versions to each test):
 * a file that runs longer, or whose open handles keep it alive after its last test, is stopped
 * and fails. Tests that start processes set tighter { timeout }s of their own.
 */
const TEST_TIMEOUT_MS = 120_000;
/** If the runner itself does not return by then, its whole process group is killed. */
const WATCHDOG_MS = TEST_TIMEOUT_MS + 30_000;
/** How long processes of a finished file get to finish exiting before they count as leaked. */
const EXIT_GRACE_MS = 2_000;
/** Names the tests give what they create under os.tmpdir() (and the shm segments' prefix). */
const PROJECT_PREFIXES = ["lamina-"];
const TAG_VAR = "LAMINA_SHM_TAG";

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
let files = walk(testRoot).sort();
if (filters.length) files = files.filter((f) => filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error("no test files found under dist/test (run `npm run build:ts` first)");
  process.exit(1);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Pids of the processes (other than this one) whose environment holds TAG_VAR=tag. */
function taggedProcesses(tag) {
  const want = `${TAG_VAR}=${tag}`;
  const found = [];
  let entries = [];
  try {
    entries = readdirSync("/proc");
  } catch {
    return found; // no procfs: the check is skipped
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let env;
    try {
      env = readFileSync(`/proc/${name}/environ`, "latin1");
    } catch {
      continue; // gone, or not ours to read
    }
    if (!env.split("\0").includes(want)) continue;
    let cmd = "";
    try {
      cmd = readFileSync(`/proc/${name}/cmdline`, "latin1").split("\0").join(" ").trim();
    } catch {}
    found.push({ pid: Number(name), cmd });
  }
  return found;
}

/** Network namespaces a file created with its tag (test/disagg/multi-host: one per "host"). */
function netnsOf(tag) {
  const r = spawnSync("ip", ["netns", "list"], { encoding: "utf8" });
  if (r.status !== 0) return [];
  return r.stdout
    .split("\n")
    .map((l) => l.split(" ")[0])
    .filter((n) => n?.startsWith(`lamina-${tag}-`));
}

function shmSegments(tag) {
  try {
    return readdirSync("/dev/shm").filter((n) => n.startsWith(`lamina-${tag}-`));
  } catch {
    return [];
  }
}

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");
const stripAnsi = (s) => s.replace(ANSI, "");
const SUMMARY = /^ℹ (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ([\d.]+)$/;

/** Runs one file; resolves with its counts and the problems found around it. */
async function runFile(file, index, runDir) {
  const tag = `r${process.pid}f${index}`;
  const fileTmp = path.join(runDir, `f${index}`);
  mkdirSync(fileTmp);
  const started = Date.now();
  const child = spawn(
    process.execPath,
    ["--test", "--test-reporter=spec", `--test-timeout=${TEST_TIMEOUT_MS}`, file],
    {
      cwd: root,
      detached: true,
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, TMPDIR: fileTmp, [TAG_VAR]: tag },
    },
  );
  current = child;
  const counts = {};
  let pending = "";
  const onLine = (line) => {
    const m = SUMMARY.exec(stripAnsi(line));
    if (m) counts[m[1]] = Number(m[2]);
    else process.stdout.write(`${line}\n`);
  };
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (d) => {
    pending += d;
    const lines = pending.split("\n");
    pending = lines.pop();
    for (const l of lines) onLine(l);
  });
  let hung = false;
  const watchdog = setTimeout(() => {
    hung = true;
    killGroup(child.pid);
  }, WATCHDOG_MS);
  const [code, signal] = await new Promise((resolve) => child.once("close", (c, s) => resolve([c, s])));
  clearTimeout(watchdog);
  current = null;
  if (pending) onLine(pending);
  killGroup(child.pid); // anything left in the runner's group

  const problems = [];
  if (hung) problems.push(`did not finish within ${WATCHDOG_MS / 1000} s; killed`);
  if (!("pass" in counts) && !hung) problems.push(`ended without a summary (${signal ?? `exit ${code}`})`);
  const failedTests = (counts.fail ?? 0) + (counts.cancelled ?? 0);
  if (code !== 0 && failedTests === 0 && !hung) problems.push(`exited with ${signal ?? code}`);

  let leaked = taggedProcesses(tag);
  for (let waited = 0; leaked.length > 0 && waited < EXIT_GRACE_MS; waited += 100) {
    await sleep(100);
    leaked = taggedProcesses(tag);
  }
  for (const p of leaked) {
    problems.push(`left process ${p.pid} running: ${p.cmd.slice(0, 160)}`);
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {}
  }
  // Deleting a namespace also removes the veth pair whose one end lives in it.
  for (const ns of netnsOf(tag)) {
    problems.push(`left network namespace ${ns}`);
    spawnSync("ip", ["netns", "del", ns]);
  }
  for (const seg of shmSegments(tag)) {
    problems.push(`left shared-memory segment /dev/shm/${seg}`);
    rmSync(path.join("/dev/shm", seg), { force: true });
  }
  const left = readdirSync(fileTmp);
  const ours = left.filter((n) => PROJECT_PREFIXES.some((p) => n.startsWith(p)));
  for (const n of ours) problems.push(`left ${path.join("<tmpdir>", n)}`);
  const others = left.filter((n) => !ours.includes(n));
  if (others.length > 0)
    console.log(`ℹ note: ${rel(file)} left ${others.join(", ")} in its temporary folder (removed)`);
  rmSync(fileTmp, { recursive: true, force: true });

  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`ℹ ${rel(file)}: ${counts.pass ?? 0} passed, ${failedTests} failed in ${seconds} s`);
  return {
    passed: counts.pass ?? 0,
    failed: failedTests,
    skipped: (counts.skipped ?? 0) + (counts.todo ?? 0),
    problems,
  };
}

function killGroup(pid) {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {}
}

const rel = (file) => path.relative(testRoot, file);

let current = null;
const runDir = mkdtempSync(path.join(tmpdir(), "lamina-run-"));
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => {
    if (current) killGroup(current.pid);
    rmSync(runDir, { recursive: true, force: true });
    process.exit(130);
  });
}

const total = { passed: 0, failed: 0, skipped: 0 };
const fileProblems = [];
for (const [i, file] of files.entries()) {
  const r = await runFile(file, i, runDir);
  total.passed += r.passed;
  total.failed += r.failed;
  total.skipped += r.skipped;
  if (r.problems.length > 0) fileProblems.push({ file, problems: r.problems });
}
rmSync(runDir, { recursive: true, force: true });

if (fileProblems.length > 0) {
  console.log("\n✖ files that leaked or did not finish (each counts as one failure):");
  for (const { file, problems } of fileProblems) {
    console.log(`  ${rel(file)}`);
    for (const p of problems) console.log(`    ${p}`);
  }
  total.failed += fileProblems.length;
}
console.log(`\n${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exit(total.failed > 0 ? 1 : 0);
